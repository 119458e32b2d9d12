/**
 * Points the TypeScript Agents SDK at the model server in the environment: the OpenAI client
 * reads OPENAI_API_KEY and OPENAI_BASE_URL (the tests set the fake model server's URL), calls
 * go to the Responses API like the Python service's, and tracing (an export to OpenAI) is off.
 */
import { setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled } from '@openai/agents';
import OpenAI from 'openai';

export function configureModel(): void {
  setDefaultOpenAIClient(new OpenAI());
  setOpenAIAPI('responses');
  setTracingDisabled(true);
}
