import grpc, json
from grpc_status import rpc_status
from tests.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_client import TimestepClient
from timestep_client.v1 import runs_pb2, agents_pb2
from agents import RunContextWrapper
from agents.run_state import RunState
from timestep.examples.agents import assistant

async def show(coro):
    try:
        r = await coro
        print("OK", str(r)[:300])
    except grpc.aio.AioRpcError as e:
        st = rpc_status.from_call(e)
        print("ERR", e.code(), e.details()[:300], [d.type_url for d in (st.details if st else [])])

async def test_probe(client: TimestepClient, fake_openai: FakeOpenAI) -> None:
    r = client.runs
    await show(r.ListRuns(runs_pb2.ListRunsRequest(status=99)))
    await show(r.CreateRun(runs_pb2.CreateRunRequest(agent="assistant", input="hi\x00there")))
    await show(r.CreateRun(runs_pb2.CreateRunRequest(agent="assistant", input="hi", session_id="a\x00b")))
    await show(r.CreateRun(runs_pb2.CreateRunRequest(agent="assistant", input="hi", metadata={"k": "a\x00b"})))
    await show(r.CreateRun(runs_pb2.CreateRunRequest(agent="assistant", input="hi", request_id="a\x00b")))
    await show(r.GetRun(runs_pb2.GetRunRequest(run_id="a\x00b")))
    await show(r.CreateRun(runs_pb2.CreateRunRequest(agent="a\x00b", input="hi")))
    await show(r.CreateRun(runs_pb2.CreateRunRequest(agent="assistant", input_items_json='[{"role":"user","content":"a\\u0000b"}]')))
    fake_openai.script(tool_call("send_email", {"to": "b@x.com", "subject": "s", "body": "b"}))
    run = (await r.CreateRun(runs_pb2.CreateRunRequest(agent="assistant", input="hi", wait=True))).run
    print(run.status)
    st = (await r.GetRunState(runs_pb2.GetRunStateRequest(run_id=run.id))).state_json
    print(st[:2000])
    await show(r.ImportRunState(runs_pb2.ImportRunStateRequest(agent="billing", state_json=st)))
    await show(r.ImportRunState(runs_pb2.ImportRunStateRequest(agent="assistant", state_json='{"$schemaVersion":"1.0","current_turn":0}')))
    await show(r.ImportRunState(runs_pb2.ImportRunStateRequest(agent="assistant", state_json='{"$schemaVersion":"1.0","currentTurn":0}')))
    empty = RunState(RunContextWrapper(context=None), "hi", assistant).to_string()
    await show(r.ImportRunState(runs_pb2.ImportRunStateRequest(agent="assistant", state_json=empty)))
    await show(r.ListInterruptions(runs_pb2.ListInterruptionsRequest(run_id="run_x")))
    await show(r.ListInterruptions(runs_pb2.ListInterruptionsRequest(page_size=-1)))
    await show(r.ApproveInterruption(runs_pb2.ApproveInterruptionRequest(run_id=run.id, interruption_id=run.interruptions[0].id + "\x00")))
    await show(r.CancelRun(runs_pb2.CancelRunRequest(run_id=run.id, reason="x\x00y")))
