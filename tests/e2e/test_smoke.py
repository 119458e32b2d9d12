from tests.fakes.openai_responses import FakeOpenAI, text, tool_call
from timestep_client import RunStatus, TimestepClient


async def test_smoke(client: TimestepClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(tool_call("send_email", {"to": "bob@example.com", "subject": "Hi", "body": "x"}))
    run = await client.create_run("assistant", "email bob", wait=True)
    print(run)
    assert run.status == RunStatus.RUN_STATUS_INTERRUPTED
    await client.approve(run.id, run.interruptions[0].id)
    fake_openai.script(text("Done, email sent."))
    run = await client.resume(run.id, wait=True)
    print(run)
    events = [e async for e in client.stream_events(run.id)]
    for e in events:
        print(e.sequence, e.WhichOneof("kind"))
    assert run.status == RunStatus.RUN_STATUS_COMPLETED
