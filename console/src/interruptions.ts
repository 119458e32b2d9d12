// An interruption as a person decides it: agent, tool, arguments (editable before approving),
// when its approval expires, the conversation so far, and Approve / Reject (with a message) /
// Always. A decision resumes the run in the same call when it was the run's last pending one.
// And a decided interruption as it was decided: by whom, and what the model proposed against
// what ran when the approver edited the arguments.
import {
  Code,
  ConnectError,
  type Decision,
  fieldViolations,
  type Interruption,
  InterruptionStatus,
  type RunEvent,
} from '../../clients/typescript/src/index.js';
import { client, report } from './api.js';
import { countdown, h, prettyJson, when } from './ui.js';

/** What a card does once its decision is recorded (by default: open the run's page). */
export type OnDecided = (decision: Decision) => void;

const openRun: OnDecided = ({ run }) => (location.hash = `#/runs/${run.id}`);

export function interruptionCard(interruption: Interruption, onDecided: OnDecided = openRun): HTMLElement {
  const tool = interruption.toolName;
  const always = h('input', { type: 'checkbox', 'aria-label': 'Always (remember this decision for this tool)' }) as HTMLInputElement;
  const message = h('input', {
    type: 'text',
    placeholder: 'Message to the model when rejecting',
    'aria-label': `Rejection message for ${tool}`,
  }) as HTMLInputElement;
  const outcome = h('p', { class: 'status status-FAILED', role: 'alert' });
  const editor = argumentEditor(interruption, always);
  const controls: Array<HTMLButtonElement | HTMLInputElement | HTMLTextAreaElement> = [message, editor.textarea];
  let expired = false;
  const enable = (on: boolean) => {
    controls.forEach((control) => (control.disabled = !on || expired));
    always.disabled = !on || expired || editor.editing();
  };
  const decide = async (approve: boolean) => {
    outcome.textContent = '';
    const argumentsJson = approve ? editor.edited() : '';
    if (argumentsJson === undefined) return; // not JSON: said next to the editor, nothing sent
    enable(false);
    try {
      const api = client();
      const decision = approve
        ? await api.approveAndResume(interruption.runId, interruption.id, { always: always.checked, argumentsJson })
        : await api.rejectAndResume(interruption.runId, interruption.id, { always: always.checked, message: message.value });
      onDecided(decision);
    } catch (error) {
      const failure = ConnectError.from(error);
      if (failure.code === Code.InvalidArgument && editor.refused(fieldViolations(error))) {
        enable(true);
      } else if (failure.code === Code.FailedPrecondition || failure.code === Code.InvalidArgument) {
        // The service's word: decided meanwhile (its approval expired, say), or not decidable so.
        outcome.textContent = failure.rawMessage;
        enable(failure.code === Code.InvalidArgument);
      } else {
        report(error);
        enable(true);
      }
    }
  };
  const approve = h('button', { class: 'primary', type: 'button', onclick: () => void decide(true) }, 'Approve') as HTMLButtonElement;
  const reject = h('button', { class: 'reject', type: 'button', onclick: () => void decide(false) }, 'Reject') as HTMLButtonElement;
  controls.push(approve, reject, editor.toggle);
  const conversation = h('details', {}, h('summary', {}, 'Conversation so far'));
  conversation.addEventListener('toggle', () => void loadConversation(conversation, interruption.runId), { once: true });
  const expiry = interruption.expireTime
    ? countdown(interruption.expireTime, () => {
        expired = true;
        enable(false);
        outcome.textContent = 'Nobody decided in time: the service rejects this call by itself.';
      })
    : null;
  return h(
    'article',
    { class: 'card interruption', 'data-interruption': interruption.id, 'data-run': interruption.runId },
    h('h2', {}, `${interruption.agent} wants to call ${tool}`),
    h(
      'p',
      { class: 'meta muted' },
      h('span', {}, 'Run ', h('a', { href: `#/runs/${interruption.runId}` }, interruption.runId)),
      h('span', {}, `Asked ${when(interruption.createTime)}`),
      expiry,
    ),
    editor.element,
    conversation,
    h('div', { class: 'actions' }, approve, reject, message, h('label', {}, always, 'Always')),
    outcome,
  );
}

interface ArgumentEditor {
  element: HTMLElement;
  toggle: HTMLButtonElement;
  textarea: HTMLTextAreaElement;
  editing: () => boolean;
  /** The edited arguments to approve with: '' when not edited, undefined (and said) when not a JSON object. */
  edited: () => string | undefined;
  /** Show the service's field violations of the edit; false when there are none to show. */
  refused: (violations: { field: string; description: string }[]) => boolean;
}

/** The arguments, pretty-printed; "Edit arguments" turns them into a JSON textarea. */
function argumentEditor(interruption: Interruption, always: HTMLInputElement): ArgumentEditor {
  const proposed = prettyJson(interruption.argumentsJson);
  const shown = h('pre', { class: 'arguments', 'aria-label': 'Tool arguments' }, proposed);
  const problemsId = `problems-${interruption.id}`;
  const textarea = h('textarea', {
    class: 'arguments-editor',
    rows: String(Math.min(20, proposed.split('\n').length + 1)),
    spellcheck: 'false',
    'aria-label': `Arguments of ${interruption.toolName} (JSON)`,
    'aria-describedby': problemsId,
    hidden: true,
  }) as HTMLTextAreaElement;
  textarea.value = proposed;
  const problems = h('ul', { class: 'problems status-FAILED', id: problemsId, 'aria-live': 'polite' });
  const say = (...lines: string[]) => {
    problems.replaceChildren(...lines.map((line) => h('li', {}, line)));
    if (lines.length) textarea.setAttribute('aria-invalid', 'true');
    else textarea.removeAttribute('aria-invalid');
  };
  const toggle = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Edit arguments') as HTMLButtonElement;
  const editing = () => !textarea.hidden;
  toggle.addEventListener('click', () => {
    const on = !editing();
    textarea.hidden = !on;
    shown.hidden = on;
    toggle.textContent = on ? 'Discard edits' : 'Edit arguments';
    toggle.setAttribute('aria-expanded', String(on));
    // The service runs an edited call only as approved once: Always cannot go with an edit.
    always.disabled = on;
    if (on) always.checked = false;
    else textarea.value = proposed;
    say();
    if (on) textarea.focus();
  });
  const edited = (): string | undefined => {
    say();
    if (!editing()) return '';
    let value: unknown;
    try {
      value = JSON.parse(textarea.value);
    } catch (error) {
      say(`Not valid JSON: ${(error as Error).message}. Nothing was sent.`);
      textarea.focus();
      return undefined;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      say('The arguments must be a JSON object, e.g. {"to": "bob@example.com"}. Nothing was sent.');
      textarea.focus();
      return undefined;
    }
    // Unchanged: approve the call as proposed.
    return JSON.stringify(value, null, 2) === proposed ? '' : JSON.stringify(value);
  };
  const refused = (violations: { field: string; description: string }[]): boolean => {
    if (!editing() || violations.length === 0) return false;
    say(...violations.map(({ field, description }) => `${field.replace(/^arguments_json\.?/, '') || 'arguments'}: ${description}`));
    textarea.focus();
    return true;
  };
  const element = h('div', { class: 'editor' }, shown, textarea, problems, h('div', {}, toggle));
  return { element, toggle, textarea, editing, edited, refused };
}

/** A decided interruption: the decision, who made it, and proposed against approved arguments. */
export function decidedCard(interruption: Interruption): HTMLElement {
  const approved = interruption.status === InterruptionStatus.APPROVED;
  const decision = interruption.expired
    ? 'rejected: nobody decided in time'
    : `${approved ? 'approved' : 'rejected'}${interruption.approvedArgumentsJson ? ' with edited arguments' : ''}`;
  const edited = approved && interruption.approvedArgumentsJson;
  return h(
    'article',
    { class: 'card decided', 'data-interruption': interruption.id },
    h('h3', {}, `${interruption.toolName}: ${decision}`),
    h(
      'p',
      { class: 'meta muted' },
      interruption.decidedBy ? h('span', {}, `By ${interruption.decidedBy}`) : null,
      h('span', {}, `Decided ${when(interruption.decideTime)}`),
      interruption.always ? h('span', {}, 'Always') : null,
    ),
    interruption.message ? h('p', {}, `Told the model: “${interruption.message}”`) : null,
    edited
      ? h(
          'div',
          { class: 'compare' },
          h('figure', {}, h('figcaption', {}, 'Proposed by the model'), h('pre', { class: 'proposed' }, prettyJson(interruption.argumentsJson))),
          h('figure', {}, h('figcaption', {}, 'Approved to run'), h('pre', { class: 'approved' }, prettyJson(interruption.approvedArgumentsJson))),
        )
      : h('pre', { class: 'arguments', 'aria-label': 'Tool arguments' }, prettyJson(interruption.argumentsJson)),
  );
}

/** The cards of `interruptions`, reusing those already built (so an edit or a countdown in
 * progress survives a re-render), and forgetting the rest. */
export function keptCards(
  cache: Map<string, HTMLElement>,
  interruptions: Interruption[],
  build: (interruption: Interruption) => HTMLElement,
): HTMLElement[] {
  const cards = interruptions.map((i) => cache.get(i.id) ?? build(i));
  cache.clear();
  interruptions.forEach((i, index) => cache.set(i.id, cards[index]));
  return cards;
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
        `${kind.value.toolName}: ${kind.value.status === InterruptionStatus.APPROVED ? 'approved' : 'rejected'}${kind.value.approvedArgumentsJson ? ` with ${prettyJson(kind.value.approvedArgumentsJson)}` : ''}${kind.value.message ? ` (“${kind.value.message}”)` : ''}`,
      ];
    case 'interruptionExpired':
      return ['Expired', `${kind.value.toolName}: nobody decided in time`];
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
