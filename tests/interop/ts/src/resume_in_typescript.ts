// Resume in TypeScript a run the Timestep service paused for approval. In tests/interop/ts
// (after `npm ci && npm run build` in clients/typescript):
//   npm ci && npm run build
//   node dist/resume_in_typescript.js localhost:50051 run_…
import { RunState, run } from '@openai/agents';
import { StateFormat } from '@timestep/client';
import { connectNode } from '@timestep/client/node';
import { assistant } from './agents.js';
import { configureModel } from './model.js';

const [address, runId] = process.argv.slice(2);
configureModel();
const client = connectNode({ baseUrl: `http://${address}` });

const { stateJson } = await client.getRunState(runId, StateFormat.TYPESCRIPT);
const state = await RunState.fromString(assistant, stateJson);
for (const interruption of state.getInterruptions()) {
  console.log(`approving ${interruption.name}(${interruption.arguments})`);
  state.approve(interruption);
}
const result = await run(assistant, state);
console.log(result.finalOutput);
