/**
 * The TypeScript twins of the service's example agents (`server/timestep/examples/agents.py`).
 *
 * RunState JSON refers to agents and tools by name, so the names, instructions, tool
 * descriptions, JSON schemas and tool outputs here match the Python definitions exactly: a
 * state paused on one side resumes on the other as if it had never left.
 */
import { Agent, tool } from '@openai/agents';

export const DEFAULT_MODEL = 'gpt-4.1';

type Properties = Record<string, { title: string; type: 'string' | 'number' }>;

/** The strict JSON schema the Python SDK's `function_tool` derives for a function's arguments. */
function argumentsSchema(functionName: string, properties: Properties) {
  return {
    properties,
    required: Object.keys(properties),
    title: `${functionName}_args`,
    type: 'object' as const,
    additionalProperties: false as const,
  };
}

export const getWeather = tool({
  name: 'get_weather',
  description: 'Get the current weather for a city.',
  parameters: argumentsSchema('get_weather', { city: { title: 'City', type: 'string' } }),
  strict: true,
  execute: async (input: unknown) => {
    const { city } = input as { city: string };
    return `The weather in ${city} is sunny, 21°C.`;
  },
});

export const sendEmail = tool({
  name: 'send_email',
  description: 'Send an email. A person must approve each email before it is sent.',
  parameters: argumentsSchema('send_email', {
    to: { title: 'To', type: 'string' },
    subject: { title: 'Subject', type: 'string' },
    body: { title: 'Body', type: 'string' },
  }),
  strict: true,
  needsApproval: true,
  execute: async (input: unknown) => {
    const { to, subject } = input as { to: string; subject: string };
    return `Email to ${to} with subject '${subject}' sent.`;
  },
});

export const issueRefund = tool({
  name: 'issue_refund',
  description: 'Refund an order. A person must approve every refund.',
  parameters: argumentsSchema('issue_refund', {
    order_id: { title: 'Order Id', type: 'string' },
    amount: { title: 'Amount', type: 'number' },
  }),
  strict: true,
  needsApproval: true,
  execute: async (input: unknown) => {
    const { order_id, amount } = input as { order_id: string; amount: number };
    return `Refunded ${amount.toFixed(2)} for order ${order_id}.`;
  },
});

export const billing = new Agent({
  name: 'billing',
  instructions: 'You handle billing questions and refunds. Be precise about amounts.',
  model: DEFAULT_MODEL,
  tools: [issueRefund],
});

export const assistant = new Agent({
  name: 'assistant',
  instructions:
    'You are a helpful assistant. Use get_weather for weather questions and send_email to send ' +
    'emails. Hand billing questions and refunds to the billing agent.',
  model: DEFAULT_MODEL,
  tools: [getWeather, sendEmail],
  handoffs: [billing],
});

export const AGENTS = { assistant, billing } as const;
