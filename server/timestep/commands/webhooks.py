"""`timestep webhooks create|list|get|delete|rotate|test|deliveries`."""

from __future__ import annotations

import argparse
from datetime import timedelta

from timestep_client import TimestepClient
from timestep_client.v1 import webhooks_pb2

from timestep.commands.output import OK, Output
from timestep.settings import parse_duration


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = commands.add_parser("webhooks", help="signed HTTP callbacks for run events", parents=[common])
    sub = group.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")

    create = sub.add_parser(
        "create",
        help="subscribe a URL to run events; prints the signing secret (shown once)",
        parents=[common],
    )
    create.add_argument("url", metavar="URL")
    create.add_argument(
        "--event",
        action="append",
        default=[],
        dest="events",
        metavar="TYPE",
        help="run.interrupted, run.completed, run.failed, run.cancelled or interruption.expired; "
        "repeatable (default: all)",
    )
    create.add_argument("--description", default="")
    create.set_defaults(handler=create_webhook)

    listing = sub.add_parser("list", help="list the webhooks", parents=[common])
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default: %(default)s)")
    listing.add_argument("--page-token", default="", help="continue a listing (from next_page_token)")
    listing.set_defaults(handler=list_webhooks)

    for name, help_text, handler in (
        ("get", "show a webhook", get_webhook),
        ("delete", "delete a webhook", delete_webhook),
        ("test", "send a webhook.test event", send_test),
    ):
        command = sub.add_parser(name, help=help_text, parents=[common])
        command.add_argument("webhook", metavar="ID")
        command.set_defaults(handler=handler)

    rotate = sub.add_parser(
        "rotate",
        help="replace a webhook's signing secret; prints the new one (shown once)",
        parents=[common],
    )
    rotate.add_argument("webhook", metavar="ID")
    rotate.add_argument(
        "--overlap",
        type=overlap,
        metavar="DURATION",
        help="keep signing with the replaced secret too for this long, e.g. 1h or 7d; 0 revokes it "
        "at once (default: the service's, 24h)",
    )
    rotate.set_defaults(handler=rotate_secret)

    deliveries = sub.add_parser(
        "deliveries", help="a webhook's deliveries with their attempts, newest first", parents=[common]
    )
    deliveries.add_argument("webhook", metavar="ID")
    deliveries.add_argument("--limit", type=int, default=20, help="at most this many (default: %(default)s)")
    deliveries.add_argument("--page-token", default="", help="continue a listing (from next_page_token)")
    deliveries.set_defaults(handler=list_deliveries)


def overlap(text: str) -> timedelta:
    """`--overlap`: "0", or a duration such as 45s, 30m, 12h or 7d."""
    if text == "0":
        return timedelta(0)
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}, or 0") from error


def format_webhook(webhook: webhooks_pb2.Webhook) -> str:
    line = f"{webhook.id}  {webhook.url}  events={','.join(webhook.event_types)}"
    if webhook.run_id:
        line += f"  run={webhook.run_id}"
    if webhook.HasField("previous_secret_expire_time"):
        until = webhook.previous_secret_expire_time.ToDatetime().isoformat(timespec="seconds")
        line += f"  previous-secret-until={until}Z"
    return line + (f"  {webhook.description!r}" if webhook.description else "")


def format_delivery(delivery: webhooks_pb2.WebhookDelivery) -> str:
    status = webhooks_pb2.DeliveryStatus.Name(delivery.status).removeprefix("DELIVERY_STATUS_")
    lines = [f"{delivery.id}  {delivery.event_type}  {status}  run={delivery.run_id or '-'}"]
    for attempt in delivery.attempts:
        outcome = f"HTTP {attempt.response_code}" if attempt.response_code else attempt.error
        when = attempt.time.ToDatetime().isoformat(timespec="seconds")
        lines.append(f"  #{attempt.number} {when}Z  {outcome}  {attempt.latency_ms:.0f} ms")
    return "\n".join(lines)


async def create_webhook(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.create_webhook(args.url, args.events, description=args.description)
    output.result(
        response,
        f"{format_webhook(response.webhook)}\nsigning secret (shown once): {response.secret}",
    )
    return OK


async def list_webhooks(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.list_webhooks(page_size=args.limit, page_token=args.page_token)
    lines = [format_webhook(w) for w in response.webhooks] or ["no webhooks"]
    if response.next_page_token:
        lines.append(f"more: --page-token {response.next_page_token}")
    output.result(response, "\n".join(lines))
    return OK


async def get_webhook(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    webhook = await client.get_webhook(args.webhook)
    output.result(webhook, format_webhook(webhook))
    return OK


async def delete_webhook(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    await client.delete_webhook(args.webhook)
    output.result({"webhook_id": args.webhook, "deleted": True}, f"deleted webhook {args.webhook}")
    return OK


async def rotate_secret(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.rotate_webhook_secret(args.webhook, previous_secret_ttl=args.overlap)
    output.result(
        response, f"{format_webhook(response.webhook)}\nnew signing secret (shown once): {response.secret}"
    )
    return OK


async def send_test(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    delivery = await client.send_test_event(args.webhook)
    output.result(delivery, format_delivery(delivery))
    return OK


async def list_deliveries(client: TimestepClient, args: argparse.Namespace, output: Output) -> int:
    response = await client.list_webhook_deliveries(
        args.webhook, page_size=args.limit, page_token=args.page_token
    )
    lines = [format_delivery(d) for d in response.deliveries] or ["no deliveries"]
    if response.next_page_token:
        lines.append(f"more: --page-token {response.next_page_token}")
    output.result(response, "\n".join(lines))
    return OK
