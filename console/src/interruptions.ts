// An interruption as a person decides it: agent, tool, arguments, the conversation so far, and
// Approve / Reject (with a message) / Always. Deciding the run's last pending interruption
// resumes the run and opens its page.
import {
  type Interruption,
  InterruptionStatus,
  type RunEvent,
} from '../../clients/typescript/src/index.js';
import { client, report } from './api.js';
import { h, prettyJson, when } from './ui.js';

export function interruptionCard(interruption: Interruption): HTMLElement {
  const always = h('input', { type: 'checkbox', 'aria-label': 'Always (remember this decision for this tool)' }) as HTMLInputElement;
  const message = h('input', {
    type: 'text',
    placeholder: 'Message to the model when rejecting',
    'aria-label': `Rejection message for ${interruption.toolName}`,
  }) as HTMLInputElement;
  const buttons: HTMLButtonElement[] = [];
  const decide = async (approve: boolean) => {
    buttons.forEach((button) => (button.disabled = true));
    try {
      const api = client();
      const options = { always: always.checked };
      if (approve) await api.approve(interruption.runId, interruption.id, options);
      else await api.reject(interruption.runId, interruption.id, { ...options, message: message.value });
      const run = await api.getRun(interruption.runId);
      if (!run.interruptions.some((i) => i.status === InterruptionStatus.PENDING)) {
        await api.resume(run.id);
      }
      location.hash = `#/runs/${interruption.runId}`;
    } catch (error) {
      report(error);
      buttons.forEach((button) => (button.disabled = false));
    }
  };
  const approve = h('button', { class: 'primary', type: 'button', onclick: () => void decide(true) }, 'Approve') as HTMLButtonElement;
  const reject = h('button', { type: 'button', onclick: () => void decide(false) }, 'Reject') as HTMLButtonElement;
  buttons.push(approve, reject);
  const conversation = h('details', {}, h('summary', {}, 'Conversation so far'));
  conversation.addEventListener('toggle', () => void loadConversation(conversation, interruption.runId), { once: true });
  return h(
    'article',
    { class: 'card interruption', 'data-interruption': interruption.id, 'data-run': interruption.runId },
    h('h2', {}, `${interruption.agent} wants to call ${interruption.toolName}`),
    h(
      'p',
      { class: 'meta muted' },
      h('span', {}, 'Run ', h('a', { href: `#/runs/${interruption.runId}` }, interruption.runId)),
      h('span', {}, `Asked ${when(interruption.createTime)}`),
    ),
    h('pre', { class: 'arguments', 'aria-label': 'Tool arguments' }, prettyJson(interruption.argumentsJson)),
    conversation,
    h('div', { class: 'actions' }, approve, reject, message, h('label', {}, always, 'Always')),
  );
}

async function loadConversation(into: HTMLElement, runId: string): Promise<void> {
  const list = h('ol', { class: 'timeline' });
  into.appendChild(list);
  try {
    for await (const event of client().streamEvents(runId)) {
      const line = describe(event);
      if (line) list.appendChild(h('li', {}, h('span', { class: 'kind' }, line[0]), line[1]));
    }
  } catch (error) {
    report(error);
  }
}

/** A stored event as (what, detail) for a timeline; undefined for live-only deltas. */
export function describe(event: RunEvent): [string, string] | undefined {
  const { kind } = event;
  switch (kind.case) {
    case 'statusChanged':
      return ['Status', `${statusName(kind.value.status)}${kind.value.reason ? ` (${kind.value.reason})` : ''}`];
    case 'messageOutput':
      return [`${kind.value.agent} said`, kind.value.text];
    case 'toolCalled':
      return [`${kind.value.agent} called ${kind.value.toolName}`, prettyJson(kind.value.argumentsJson)];
    case 'toolOutput':
      return ['Tool output', kind.value.output];
    case 'handoff':
      return ['Handoff', `${kind.value.fromAgent} → ${kind.value.toAgent}`];
    case 'interruption':
      return ['Needs approval', `${kind.value.toolName} ${prettyJson(kind.value.argumentsJson)}`];
    case 'interruptionDecided':
      return [
        'Decided',
        `${kind.value.toolName}: ${kind.value.status === InterruptionStatus.APPROVED ? 'approved' : 'rejected'}${kind.value.message ? ` (“${kind.value.message}”)` : ''}`,
      ];
    case 'finalOutput':
      return ['Final output', kind.value.output];
    case 'error':
      return ['Error', `${kind.value.code}: ${kind.value.message}`];
    case 'usage':
      return ['Usage', `${kind.value.total?.totalTokens ?? 0n} tokens, $${(kind.value.total?.costUsd ?? 0).toFixed(4)}`];
    case 'reasoning':
      return [`${kind.value.agent} reasoned`, ''];
    default:
      return undefined;
  }
}

export function statusName(status: number): string {
  return ['UNSPECIFIED', 'QUEUED', 'RUNNING', 'INTERRUPTED', 'COMPLETED', 'FAILED', 'CANCELLED'][status] ?? String(status);
}
