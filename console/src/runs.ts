// Runs: a filtered, paged list; one run's page with its live timeline (tokens as they are
// generated), status, error and cost, and its actions; and the new-run form.
import {
  type Decision,
  InterruptionStatus,
  type Run,
  RunStatus,
  StateFormat,
} from '../../clients/typescript/src/index.js';
import { client, report } from './api.js';
import { decidedCard, describe, interruptionCard, keptCards, statusName } from './interruptions.js';
import {
  append,
  download,
  filterField,
  filterForm,
  h,
  nextPageLink,
  sessionHref,
  show,
  table,
  when,
} from './ui.js';

const STATUSES = ['QUEUED', 'RUNNING', 'INTERRUPTED', 'COMPLETED', 'FAILED', 'CANCELLED'];

export async function runList(query: URLSearchParams): Promise<void> {
  const filter = {
    agent: query.get('agent') ?? '',
    status: STATUSES.indexOf(query.get('status') ?? '') + 1,
    sessionId: query.get('session') ?? '',
    pageToken: query.get('page') ?? '',
    pageSize: 25,
  };
  const statusSelect = h(
    'select',
    { name: 'status' },
    h('option', { value: '' }, 'any'),
    ...STATUSES.map((s) => h('option', { value: s, selected: query.get('status') === s }, s)),
  );
  const form = filterForm(
    'runs',
    h('label', {}, 'Status', statusSelect),
    filterField(query, 'agent', 'Agent'),
    filterField(query, 'session', 'Session'),
  );
  const body = h('tbody');
  const more = h('p');
  show('Runs', form, table(RUN_COLUMNS, body), more);
  try {
    const page = await client().listRuns(filter);
    append(body, ...page.runs.map(runRow));
    if (page.runs.length === 0) body.appendChild(h('tr', {}, h('td', { colspan: '5' }, 'No runs match.')));
    append(more, nextPageLink('runs', query, page.nextPageToken));
  } catch (error) {
    report(error);
  }
}

/** The columns of `runRow`. */
export const RUN_COLUMNS = ['Run', 'Status', 'Agent', 'Created', 'Cost'];

/** A run as a row of a runs table, linked to its page. */
export function runRow(run: Run): HTMLElement {
  return h(
    'tr',
    {},
    h('td', {}, h('a', { href: `#/runs/${run.id}` }, run.id)),
    h('td', { class: `status status-${statusName(run.status)}` }, statusName(run.status)),
    h('td', {}, run.agent),
    h('td', {}, when(run.createTime)),
    h('td', {}, `$${(run.usage?.costUsd ?? 0).toFixed(4)}`),
  );
}

export async function runPage(runId: string, signal: AbortSignal): Promise<void> {
  const header = h('div', { class: 'card', 'aria-live': 'polite' });
  const decisions = h('section', { 'aria-label': 'Approvals' });
  const timeline = h('ol', { class: 'timeline', 'aria-label': 'Events' });
  show(`Run ${runId}`, header, decisions, h('h2', {}, 'Timeline'), timeline);
  const api = client();
  let last = 0n;
  // One reader of the run's events at a time: a call while one reads makes it read again after.
  let reading: Promise<void> | undefined;
  let readAgain = false;
  const follow = (): Promise<void> => {
    if (reading) {
      readAgain = true;
      return reading;
    }
    reading = (async () => {
      try {
        do {
          readAgain = false;
          await read();
        } while (readAgain && !signal.aborted);
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  };
  // StreamRunEvents ends when the run pauses. While it waits, what happens to it without this
  // page (an approval expiring, the run resuming by itself, a decision made elsewhere) comes
  // through the tenant's feed, WatchRuns, as it does to the inbox; the page then reads on.
  let watching: AbortController | undefined;
  const watch = async (stop: AbortSignal) => {
    for await (const change of api.watchRuns('', { signal: stop })) {
      // The bookmark first: catch up on what happened before the feed started.
      if (!change.event || change.runId === runId) await follow();
    }
  };
  const keepWatching = (run: Run) => {
    if (run.status === RunStatus.INTERRUPTED && !watching && !signal.aborted) {
      const stop = new AbortController();
      signal.addEventListener('abort', () => stop.abort(), { once: true });
      watching = stop;
      void watch(stop.signal).catch(report);
    } else if (run.status !== RunStatus.INTERRUPTED && watching) {
      watching.abort();
      watching = undefined;
    }
  };
  const read = async () => {
    // Text deltas of the item being generated, replaced by the stored message when it arrives.
    let live: HTMLElement | undefined;
    for await (const event of api.streamEvents(runId, last, { signal })) {
      if (event.kind.case === 'textDelta') {
        if (!live) {
          live = h('li', { class: 'live', 'aria-label': 'Output so far' });
          timeline.appendChild(live);
        }
        live.textContent += event.kind.value.delta;
        continue;
      }
      last = event.sequence;
      if (event.kind.case === 'messageOutput' && live) {
        live.remove();
        live = undefined;
      }
      const line = describe(event);
      if (line) timeline.appendChild(h('li', { 'data-kind': event.kind.case ?? '' }, h('span', { class: 'kind' }, line[0]), line[1]));
    }
    keepWatching(await refresh());
  };
  const cards = new Map<string, HTMLElement>();
  // Deciding here stays here: the page follows the run if the decision resumed it.
  const decided = (decision: Decision) =>
    void (decision.run.status === RunStatus.INTERRUPTED ? refresh() : follow()).catch(report);
  const refresh = async () => {
    const run = await api.getRun(runId);
    renderHeader(header, run, { cancel, resume, exportState });
    const waiting = run.interruptions.filter((i) => i.status === InterruptionStatus.PENDING);
    const done = run.interruptions.filter((i) => i.status !== InterruptionStatus.PENDING);
    decisions.replaceChildren(
      ...keptCards(cards, waiting, (i) => interruptionCard(i, decided)),
      ...(done.length ? [h('h2', {}, 'Decisions'), ...done.map(decidedCard)] : []),
    );
    return run;
  };
  const act = async (action: () => Promise<unknown>, thenFollow: boolean) => {
    try {
      await action();
      if (thenFollow) await follow();
      else await refresh();
    } catch (error) {
      report(error);
    }
  };
  const cancel = () => act(() => api.cancel(runId, 'Cancelled from the console'), false);
  const resume = () => act(() => api.resume(runId), true);
  const exportState = (format: StateFormat) =>
    act(async () => {
      const state = await api.getRunState(runId, format);
      download(`${runId}.${format === StateFormat.TYPESCRIPT ? 'typescript' : 'python'}.json`, state.stateJson);
    }, false);
  try {
    // Subscribe at once (tokens are live-only: the sooner, the fewer a just-resumed run's page
    // misses); the header fills in meanwhile.
    await Promise.all([follow(), refresh()]);
  } catch (error) {
    report(error);
  }
}

interface RunActions {
  cancel: () => void;
  resume: () => void;
  exportState: (format: StateFormat) => void;
}

function renderHeader(header: HTMLElement, run: Run, actions: RunActions): void {
  const stopped = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED].includes(run.status);
  const interrupted = run.status === RunStatus.INTERRUPTED;
  const allDecided = !run.interruptions.some((i) => i.status === InterruptionStatus.PENDING);
  header.replaceChildren();
  append(
    header,
    h(
      'p',
      { class: 'meta' },
      h('span', {}, 'Status: ', h('span', { class: `status status-${statusName(run.status)}`, id: 'run-status' }, statusName(run.status))),
      h('span', {}, `Agent: ${run.currentAgent || run.agent}`),
      run.sessionId ? h('span', {}, 'Session: ', h('a', { href: sessionHref(run.sessionId) }, run.sessionId)) : null,
      h('span', {}, `Tokens: ${run.usage?.totalTokens ?? 0n}`),
      h('span', {}, `Cost: $${(run.usage?.costUsd ?? 0).toFixed(4)}`),
      h('span', {}, `Updated: ${when(run.updateTime)}`),
    ),
    run.error ? h('p', { class: 'status status-FAILED' }, `Error (${run.error.code}): ${run.error.message}`) : null,
    run.finalOutput ? h('div', {}, h('h2', {}, 'Final output'), h('pre', { id: 'final-output' }, run.finalOutput)) : null,
    h(
      'div',
      { class: 'actions' },
      interrupted && allDecided ? h('button', { class: 'primary', type: 'button', onclick: actions.resume }, 'Resume') : null,
      !stopped ? h('button', { type: 'button', onclick: actions.cancel }, 'Cancel run') : null,
      interrupted
        ? h('button', { type: 'button', onclick: () => actions.exportState(StateFormat.PYTHON) }, 'Export RunState (Python)')
        : null,
      interrupted
        ? h('button', { type: 'button', onclick: () => actions.exportState(StateFormat.TYPESCRIPT) }, 'Export RunState (TypeScript)')
        : null,
    ),
  );
}

export async function newRun(): Promise<void> {
  const agent = h('select', { name: 'agent', required: true });
  const form = h(
    'form',
    { class: 'stack' },
    h('label', {}, 'Agent', agent),
    h('label', {}, 'Input', h('textarea', { name: 'input', rows: '4', required: true })),
    h('label', {}, 'Model (optional override)', h('input', { name: 'model', type: 'text', placeholder: 'e.g. ollama/llama3.2' })),
    h('label', {}, 'Session (optional)', h('input', { name: 'session', type: 'text' })),
    h('div', {}, h('button', { class: 'primary', type: 'submit' }, 'Start run')),
  ) as HTMLFormElement;
  show('New run', form);
  const api = client();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    void api
      .createRun(String(data.get('agent')), String(data.get('input')), {
        model: String(data.get('model') ?? ''),
        sessionId: String(data.get('session') ?? ''),
      })
      .then((run) => (location.hash = `#/runs/${run.id}`), report);
  });
  try {
    const { agents } = await api.agents.listAgents({});
    append(agent, ...agents.map((a) => h('option', { value: a.name }, a.name)));
  } catch (error) {
    report(error);
  }
}
