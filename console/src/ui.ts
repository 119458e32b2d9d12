// Small DOM helpers: elements built from data (text is always text, never HTML).

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | ((event: Event) => void) | undefined>;

export function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

export function main(): HTMLElement {
  return document.getElementById('main') as HTMLElement;
}

/** Replace the page's content, and say where we are. */
export function show(title: string, ...children: Child[]): HTMLElement {
  const page = main();
  page.replaceChildren(h('h1', {}, title), ...children.filter((c): c is Node | string => !!c));
  document.title = `${title} · Timestep`;
  return page;
}

export function notice(text: string): void {
  const element = document.getElementById('notice') as HTMLElement;
  element.textContent = text;
  element.hidden = text === '';
}

/** JSON text pretty-printed when it parses, as given otherwise. */
export function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

type Time = { seconds: bigint; nanos: number };

function millis(timestamp: Time): number {
  return Number(timestamp.seconds) * 1000 + timestamp.nanos / 1e6;
}

export function when(timestamp: Time | undefined): string {
  if (!timestamp) return '';
  return new Date(millis(timestamp)).toLocaleString();
}

/** "2 d 3 h", "1 h 5 min", "4 min 12 s" or "9 s": how long `ms` is, rounded up to a second. */
export function span(ms: number): string {
  const total = Math.ceil(ms / 1000);
  const [days, hours, minutes, seconds] = [Math.floor(total / 86400), Math.floor((total % 86400) / 3600), Math.floor((total % 3600) / 60), total % 60];
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}

/**
 * "Expires in 4 min 12 s", kept current every second until `expire` passes, then "Expired" and
 * `onExpired()`, once. Deliberately not a live region (a screen reader reads it when it gets
 * there; it is not announced every second). Stops when the element has left the page.
 */
export function countdown(expire: Time, onExpired: () => void): HTMLElement {
  const at = millis(expire);
  const element = h('span', { class: 'expiry', title: `Expires ${new Date(at).toLocaleString()}` });
  let timer: ReturnType<typeof setInterval> | undefined;
  const tick = () => {
    const left = at - Date.now();
    if (left > 0 && (timer === undefined || element.isConnected)) {
      element.textContent = `Expires in ${span(left)}`;
      return;
    }
    clearInterval(timer);
    if (left > 0) return; // left the page
    element.textContent = 'Expired';
    element.classList.add('status', 'status-FAILED');
    onExpired();
  };
  tick();
  if (at > Date.now()) timer = setInterval(tick, 1000);
  return element;
}

export function download(filename: string, text: string): void {
  const link = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: filename });
  document.body.appendChild(link);
  link.click();
  link.remove();
}

/** A table with column headings over `body` (a tbody, filled now or later). */
export function table(headings: string[], body: HTMLElement = h('tbody')): HTMLElement {
  return h('table', {}, h('thead', {}, h('tr', {}, ...headings.map((t) => h('th', { scope: 'col' }, t)))), body);
}

/** A search form over a listing at `#/<path>`: submitting it opens the listing with the form's
 * non-empty fields as the query (and no page token). */
export function filterForm(path: string, ...controls: Child[]): HTMLFormElement {
  const form = h(
    'form',
    { class: 'filters', role: 'search' },
    ...controls,
    h('button', { type: 'submit' }, 'Filter'),
  ) as HTMLFormElement;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) data.set(name, String(value));
    location.hash = `#/${path}?${data}`;
  });
  return form;
}

/** A labelled text field of a filter form, showing the query's value. */
export function filterField(query: URLSearchParams, name: string, label: string): HTMLElement {
  return h('label', {}, label, h('input', { name, value: query.get(name) ?? '', type: 'text' }));
}

/** The link to the next page of a listing at `#/<path>` ('' when there is none). */
export function nextPageLink(path: string, query: URLSearchParams, pageToken: string): HTMLElement | null {
  if (!pageToken) return null;
  const next = new URLSearchParams(query);
  next.set('page', pageToken);
  return h('a', { href: `#/${path}?${next}` }, 'Next page');
}

/** The console's address of a session's page. */
export function sessionHref(sessionId: string): string {
  return `#/sessions/${encodeURIComponent(sessionId)}`;
}
