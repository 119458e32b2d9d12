// The inbox: every pending interruption of the tenant across runs, newest first, kept live by
// WatchRuns (no reload, no polling).
import { type Interruption, InterruptionStatus, RunStatus } from '../../clients/typescript/src/index.js';
import { client, report } from './api.js';
import { interruptionCard, keptCards } from './interruptions.js';
import { h, show } from './ui.js';

export function inbox(signal: AbortSignal): void {
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
  const list = h('section', { 'aria-label': 'Pending approvals' });
  show('Inbox', status, list);
  const pending = new Map<string, Interruption>();
  const cards = new Map<string, HTMLElement>();
  const render = () => {
    const newest = [...pending.values()].sort(
      (a, b) => Number((b.createTime?.seconds ?? 0n) - (a.createTime?.seconds ?? 0n)) || b.id.localeCompare(a.id),
    );
    list.replaceChildren(...keptCards(cards, newest, (i) => interruptionCard(i)));
    status.textContent =
      newest.length === 0
        ? 'No approvals are waiting. New ones appear here as runs pause.'
        : `${newest.length} waiting for a decision; new ones appear here as runs pause.`;
  };
  void (async () => {
    const api = client();
    try {
      for await (const change of api.watchRuns('', { signal })) {
        const kind = change.event?.kind;
        if (!kind) {
          // The bookmark: everything pending now; changes after it follow on this stream.
          let pageToken = '';
          do {
            const page = await api.listInterruptions('', pageToken);
            for (const interruption of page.interruptions) pending.set(interruption.id, interruption);
            pageToken = page.nextPageToken;
          } while (pageToken);
        } else if (kind.case === 'interruption' && kind.value.status === InterruptionStatus.PENDING) {
          pending.set(kind.value.id, kind.value);
        } else if (kind.case === 'interruptionDecided') {
          pending.delete(kind.value.id);
        } else if (kind.case === 'statusChanged' && kind.value.status !== RunStatus.INTERRUPTED) {
          for (const [id, interruption] of pending) if (interruption.runId === change.runId) pending.delete(id);
        } else {
          continue;
        }
        if (!signal.aborted) render();
      }
    } catch (error) {
      report(error);
      status.textContent = 'Not connected: reload the page to try again.';
    }
  })();
}
