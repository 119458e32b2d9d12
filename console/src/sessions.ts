// Conversations (SessionService): the tenant's sessions, newest activity first; one session's
// history in order, each item linked to the run that added it, its runs, and deleting it (with
// or without its runs) after a confirmation that says what goes.
import { type Run, RunStatus, type Session, type SessionItem } from '../../clients/typescript/src/index.js';
import { client, report } from './api.js';
import { RUN_COLUMNS, runRow } from './runs.js';
import {
  append,
  filterField,
  filterForm,
  h,
  nextPageLink,
  prettyJson,
  sessionHref,
  show,
  table,
  when,
} from './ui.js';

/** What the list says after a deletion: `#/sessions?deleted=<id>&items=<n>&runs=<n>`. */
const DELETED = ['deleted', 'items', 'runs'];

export async function sessionList(query: URLSearchParams): Promise<void> {
  const listing = new URLSearchParams(query);
  for (const name of DELETED) listing.delete(name);
  const done = query.get('deleted');
  const body = h('tbody');
  const more = h('p');
  show(
    'Conversations',
    done
      ? h(
          'p',
          { class: 'done', role: 'status' },
          `Deleted conversation ${done}: ${plural(query.get('items'), 'item')} and ${plural(query.get('runs'), 'run')}.`,
        )
      : null,
    filterForm('sessions', filterField(listing, 'agent', 'Agent')),
    h('p', { class: 'muted' }, 'Newest activity first.'),
    table(['Conversation', 'Agents', 'Items', 'Runs', 'Last activity'], body),
    more,
  );
  try {
    const page = await client().listSessions({
      agent: listing.get('agent') ?? '',
      pageToken: listing.get('page') ?? '',
      pageSize: 25,
    });
    append(body, ...page.sessions.map(sessionRow));
    if (page.sessions.length === 0) {
      body.appendChild(h('tr', {}, h('td', { colspan: '5' }, 'No conversations match.')));
    }
    append(more, nextPageLink('sessions', listing, page.nextPageToken));
  } catch (error) {
    report(error);
  }
}

function sessionRow(session: Session): HTMLElement {
  return h(
    'tr',
    { 'data-session': session.id },
    h('td', {}, h('a', { href: sessionHref(session.id) }, session.id)),
    h('td', {}, session.agents.join(', ')),
    h('td', {}, String(session.itemCount)),
    h('td', {}, String(session.runCount)),
    h('td', {}, when(session.lastActivityTime)),
  );
}

/** How many items of a conversation's history its page shows at first, and adds at each "Show more". */
const HISTORY_PAGE = 200;

/** A conversation's page; leaving it (`signal`) stops its requests. */
export async function sessionPage(sessionId: string, signal: AbortSignal): Promise<void> {
  const header = h('div', { class: 'card' });
  const runs = h('tbody');
  const history = h('ol', { class: 'timeline history', 'aria-label': 'History' });
  const more = h('div', { class: 'more' });
  show(
    `Conversation ${sessionId}`,
    header,
    h('h2', {}, 'History'),
    history,
    more,
    h('h2', {}, 'Runs, newest first'),
    table(RUN_COLUMNS, runs),
  );
  const api = client();
  try {
    const session = await api.getSession(sessionId);
    const showItems = async (pageToken: string) => {
      const page = await api.sessions.listSessionItems({ sessionId, pageToken, pageSize: HISTORY_PAGE }, { signal });
      append(history, ...page.items.map(itemLine));
      if (!history.firstChild) history.appendChild(h('li', {}, 'The history is empty.'));
      const next = page.nextPageToken;
      const showMore = h('button', { type: 'button', class: 'show-more' }, 'Show more') as HTMLButtonElement;
      showMore.addEventListener('click', () => {
        showMore.disabled = true;
        void showItems(next).catch((error: unknown) => {
          report(error);
          showMore.disabled = false;
        });
      });
      more.replaceChildren(
        ...(next
          ? [h('p', { class: 'muted', role: 'status' }, `Showing the first ${history.children.length} of ${session.itemCount} items.`), showMore]
          : []),
      );
    };
    const items = showItems('');
    const all: Run[] = [];
    let pageToken = '';
    do {
      const page = await api.runs.listRuns({ sessionId, pageToken, pageSize: 100 }, { signal });
      all.push(...page.runs);
      pageToken = page.nextPageToken;
    } while (pageToken);
    append(runs, ...all.map(runRow));
    // The service refuses to delete a conversation in progress unless told to cancel it first.
    const active = all.filter((run) => run.status === RunStatus.QUEUED || run.status === RunStatus.RUNNING);
    renderHeader(header, session, active.length);
    await items;
  } catch (error) {
    report(error);
  }
}

function renderHeader(header: HTMLElement, session: Session, active: number): void {
  const confirmation = deleteForm(session, active);
  const open = h(
    'button',
    {
      type: 'button',
      'aria-expanded': 'false',
      'aria-controls': 'confirm-delete',
      onclick: () => {
        confirmation.hidden = false;
        open.setAttribute('aria-expanded', 'true');
        confirmation.focus();
      },
    },
    'Delete conversation…',
  );
  confirmation.addEventListener('reset', () => {
    confirmation.hidden = true;
    open.setAttribute('aria-expanded', 'false');
    open.focus();
  });
  append(
    header,
    h(
      'p',
      { class: 'meta' },
      h('span', {}, `Items: ${session.itemCount}`),
      h('span', {}, `Runs: ${session.runCount}`),
      h('span', {}, `Agents: ${session.agents.join(', ') || 'none'}`),
      h('span', {}, `Started: ${when(session.createTime)}`),
      h('span', {}, `Last activity: ${when(session.lastActivityTime)}`),
    ),
    h('div', { class: 'actions' }, open),
    confirmation,
  );
}

/** The confirmation: what goes, an optional "also its runs" (and, with `active` QUEUED or
 * RUNNING runs, "cancel them first"), and Delete / Keep. */
function deleteForm(session: Session, active: number): HTMLFormElement {
  const alsoRuns = h('input', { type: 'checkbox', name: 'runs' }) as HTMLInputElement;
  const force = h('input', { type: 'checkbox', name: 'force' }) as HTMLInputElement;
  const what = h('p', { 'aria-live': 'polite' });
  const say = () => {
    const items = `its history: ${plural(String(session.itemCount), 'item')} (every message, tool call and tool output below)`;
    const cancelled = force.checked ? ` Its ${plural(String(active), 'queued or running run')} ${active === 1 ? 'is' : 'are'} cancelled first.` : '';
    what.textContent = alsoRuns.checked
      ? `This deletes ${items}, and ${plural(String(session.runCount), 'run')} of it with their events, approvals, saved RunStates and usage.${cancelled} It cannot be undone.`
      : `This deletes ${items}. Its ${plural(String(session.runCount), 'run')} stay, still naming this conversation.${cancelled} It cannot be undone.`;
  };
  alsoRuns.addEventListener('change', say);
  force.addEventListener('change', say);
  say();
  const submit = h('button', { class: 'danger', type: 'submit' }, 'Delete') as HTMLButtonElement;
  const form = h(
    'form',
    { class: 'card confirm', id: 'confirm-delete', hidden: true, tabindex: '-1', 'aria-labelledby': 'confirm-delete-title' },
    h('h2', { id: 'confirm-delete-title' }, `Delete conversation ${session.id}?`),
    what,
    h('label', {}, alsoRuns, `Also delete its ${plural(String(session.runCount), 'run')}`),
    active > 0 &&
      h(
        'label',
        {},
        force,
        `Cancel its ${plural(String(active), 'queued or running run')} first (the service refuses to delete a conversation in progress otherwise)`,
      ),
    h('div', { class: 'actions' }, submit, h('button', { type: 'reset' }, 'Keep it')),
  ) as HTMLFormElement;
  // A reset clears the checkboxes after its event: say what goes once it has.
  form.addEventListener('reset', () => queueMicrotask(say));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit.disabled = true;
    void client()
      .deleteSession(session.id, { deleteRuns: alsoRuns.checked, force: force.checked })
      .then((deleted) => {
        const done = new URLSearchParams({
          deleted: session.id,
          items: String(deleted.deletedItems),
          runs: String(deleted.deletedRuns),
        });
        location.hash = `#/sessions?${done}`;
      })
      .catch((error: unknown) => {
        report(error);
        submit.disabled = false;
      });
  });
  return form;
}

/** One item of the history: who said or did what, the run that added it, and its raw JSON. */
function itemLine(item: SessionItem): HTMLElement {
  const [kind, text] = describeItem(item.itemJson);
  return h(
    'li',
    { 'data-item': String(item.id), 'data-run': item.runId },
    h('span', { class: 'kind' }, kind),
    h('span', { class: 'said' }, text),
    h(
      'p',
      { class: 'meta muted' },
      item.runId ? h('span', {}, 'Added by run ', h('a', { href: `#/runs/${item.runId}` }, item.runId)) : h('span', {}, 'Added outside a run'),
      h('span', {}, when(item.createTime)),
    ),
    h('details', {}, h('summary', {}, 'Raw JSON'), h('pre', {}, prettyJson(item.itemJson))),
  );
}

/** An Agents SDK item as (what, detail): messages by role (User, Assistant, …), tool calls with their arguments,
 * tool outputs; other items by their type. */
function describeItem(itemJson: string): [string, string] {
  let item: Record<string, unknown>;
  try {
    item = JSON.parse(itemJson) as Record<string, unknown>;
  } catch {
    return ['Item', itemJson];
  }
  const type = typeof item.type === 'string' ? item.type : 'message';
  switch (type) {
    case 'message':
      return [capitalized(String(item.role ?? 'message')), textOf(item.content)];
    case 'function_call':
      return [`Tool call ${String(item.name)}`, prettyJson(String(item.arguments ?? ''))];
    case 'function_call_output':
      return ['Tool output', textOf(item.output)];
    case 'reasoning':
      return ['Reasoning', textOf(item.summary)];
    default:
      return [type.replaceAll('_', ' '), ''];
  }
}

/** The text of message content: a string, or the `text` of its parts. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) => (typeof part === 'object' && part && 'text' in part ? String(part.text) : JSON.stringify(part)))
      .join('\n');
  }
  return content === undefined ? '' : JSON.stringify(content);
}

function capitalized(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function plural(count: string | null, noun: string): string {
  return `${count ?? 0} ${noun}${count === '1' ? '' : 's'}`;
}
