"""The benchmark's model server: the tests' fake OpenAI Responses API, run in a process of its own,
with keep-alive, zero think time and a stateless script that follows the conversation.

    python -m bench.fake_model    # prints "port N" once it listens

The turn is chosen from the last user message of each request (so any number of runs, concurrent
or not, can share it) and from the tool outputs that follow that message:

* ``hitl`` - a `send_email` call (needs approval), then "Sent.";
* ``calls N`` - `get_weather` calls until N model calls were made, then "Done.";
* ``long N`` - an answer of N words, streamed one word per delta;
* ``hold TOKEN`` - the first request with TOKEN is never answered (until its client goes away),
  later ones answer "Recovered.": a model call kept in flight for a crash;
* anything else - a short answer.

``GET /bench/stats`` returns ``{"requests": n, "arrivals": {TOKEN: [unix times]}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

from timestep_testing.fakes.openai_responses import FakeOpenAI, Turn, text, tool_call


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class BenchModel(FakeOpenAI):
    name = "BenchModel"

    def __init__(self) -> None:
        super().__init__(keep_alive=True, cancel_on_disconnect=True)
        self.count = 0
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self._never = asyncio.Event()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/bench/stats":
            return web.json_response({"requests": self.count, "arrivals": self.arrivals})
        return await super()._dispatch(request)

    async def _record(self, request: web.Request, body: dict[str, Any]) -> Turn | None:
        # Nothing is kept per request (long benchmarks would hold every conversation).
        self.count += 1
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        if not isinstance(items, list):
            items = []
        command, outputs = "", 0
        for item in reversed(items):
            if not isinstance(item, dict):
                continue
            if item.get("type") == "function_call_output":
                outputs += 1
            elif item.get("role") == "user":
                command = _content_text(item.get("content"))
                break
        return self._turn(command.split(), outputs)

    def _turn(self, words: list[str], outputs: int) -> Turn:
        kind = words[0] if words else ""
        if kind == "hitl":
            if outputs == 0:
                return tool_call("send_email", {"to": "bob@example.com", "subject": "Late", "body": "Sorry"})
            return text("Sent.")
        if kind == "calls":
            calls = int(words[1])
            return tool_call("get_weather", {"city": "Paris"}) if outputs < calls - 1 else text("Done.")
        if kind == "long":
            return text(" ".join(f"w{index}" for index in range(int(words[1]))))
        if kind == "hold":
            token = words[1]
            self.arrivals[token].append(time.time())
            if len(self.arrivals[token]) == 1:
                return text("Never sent.", hold=self._never)
            return text("Recovered.")
        return text("Hello there, friend.")


async def serve() -> None:
    model = BenchModel()
    await model.start()
    print(f"port {model.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    await model.stop()


if __name__ == "__main__":
    asyncio.run(serve())
    sys.exit(0)
