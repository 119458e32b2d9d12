// Schedules, usage and the API key form.
import { client, apiKey, report, setApiKey } from './api.js';
import { h, notice, show, table, when } from './ui.js';

function textTable(headings: string[], rows: string[][]): HTMLElement {
  return table(headings, h('tbody', {}, ...rows.map((row) => h('tr', {}, ...row.map((cell) => h('td', {}, cell))))));
}

export async function schedules(): Promise<void> {
  const page = show('Schedules');
  try {
    const { schedules } = await client().schedules.listSchedules({ pageSize: 100 });
    const states = ['', 'active', 'paused'];
    page.appendChild(
      schedules.length === 0
        ? h('p', {}, 'No schedules. Create them with `timestep schedules create` or ScheduleService.')
        : textTable(
            ['Schedule', 'Cron', 'Agent', 'State', 'Last fired'],
            schedules.map((s) => [s.id, `${s.cron} ${s.timezone}`, s.agent, states[s.state] ?? '', when(s.lastFireTime)]),
          ),
    );
  } catch (error) {
    report(error);
  }
}

export async function usage(): Promise<void> {
  const page = show('Usage');
  try {
    const response = await client().usage.getUsage({});
    const total = response.total;
    page.appendChild(
      h('p', { class: 'meta' }, `${response.runCount} runs, ${total?.totalTokens ?? 0n} tokens, $${(total?.costUsd ?? 0).toFixed(4)} estimated`),
    );
    page.appendChild(
      textTable(
        ['Agent', 'Model', 'Runs', 'Tokens', 'Cost'],
        response.groups.map((g) => [
          g.agent,
          g.model,
          String(g.runCount),
          String(g.usage?.totalTokens ?? 0n),
          `$${(g.usage?.costUsd ?? 0).toFixed(4)}`,
        ]),
      ),
    );
  } catch (error) {
    report(error);
  }
}

const WHY: Record<string, string> = {
  needed: 'This service needs an API key to show anything.',
  refused: 'The service did not accept that key: check it, or ask the operator for one.',
};

export function keyForm(query: URLSearchParams): void {
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', value: apiKey() }) as HTMLInputElement;
  const form = h(
    'form',
    { class: 'stack' },
    ...Object.keys(WHY)
      .filter((why) => query.has(why))
      .map((why) => h('p', { class: 'status status-FAILED', role: 'alert' }, WHY[why])),
    h(
      'p',
      {},
      'The key is kept in this tab only (session storage) and sent as the bearer token; you see exactly what its tenant sees.',
    ),
    h('label', {}, 'API key', input),
    h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit' }, 'Use this key'), h('button', { type: 'button', onclick: () => { setApiKey(''); input.value = ''; } }, 'Forget')),
  ) as HTMLFormElement;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    notice('');
    location.hash = '#/inbox';
  });
  show('API key', form);
  input.focus();
}
