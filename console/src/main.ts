// The Timestep console: a hash router over the views. Leaving a view ends its streams.
import { keyForm, schedules, usage } from './admin.js';
import { inbox } from './inbox.js';
import { newRun, runList, runPage } from './runs.js';
import { sessionList, sessionPage } from './sessions.js';
import { main, notice } from './ui.js';

let leaving = new AbortController();

function route(): void {
  leaving.abort();
  leaving = new AbortController();
  notice('');
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const params = new URLSearchParams(query);
  if (parts[0] === 'runs' && parts[1]) void runPage(decodeURIComponent(parts[1]), leaving.signal);
  else if (parts[0] === 'runs') void runList(params);
  else if (parts[0] === 'sessions' && parts[1]) void sessionPage(decodeURIComponent(parts[1]), leaving.signal);
  else if (parts[0] === 'sessions') void sessionList(params);
  else if (parts[0] === 'new') void newRun();
  else if (parts[0] === 'schedules') void schedules();
  else if (parts[0] === 'usage') void usage();
  else if (parts[0] === 'key') keyForm(params);
  else inbox(leaving.signal);
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#/${parts[0] ?? 'inbox'}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  main().focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
route();
