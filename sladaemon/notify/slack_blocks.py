"""What a message looks like in Slack: Block Kit blocks, pure (the Slack app sends them).

A message of an escalation chain carries two buttons, Acknowledge and Escalate, whose value is
the chain's key; a click comes back to the daemon (daemon/slack_interactions.py), which then
replaces the buttons by who did what, when. ``slack-app://CHANNEL`` names where a message goes:
a channel id (``C…``, ``G…``) or a user id (``U…``, ``W…``: a direct message).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sladaemon.notify.message import Notification, iso

SLACK_APP = "slack-app://"
ACK_ACTION = "sladaemon_ack"
ESCALATE_ACTION = "sladaemon_escalate"
ACTIONS_BLOCK = "sladaemon_actions"  # block_id of the buttons
LINK_BLOCK = "sladaemon_link"  # block_id of the ack link
HEADER_MAX = 150  # characters of a header block's text (Slack's limit)
SECTION_MAX = 3000  # characters of a section block's text (Slack's limit)
TEXT_MAX = 4000  # characters of the fallback text we send (Slack cuts at 40 000)
_CHANNEL = re.compile(r"^[CDGUW][A-Z0-9]{2,30}$")

Block = dict[str, Any]


def slack_channel(url: str) -> str:
    """The channel or user id of a ``slack-app://`` URL ('' when it names none)."""
    return url.strip()[len(SLACK_APP) :].strip("/") if is_slack_app(url) else ""


def is_slack_app(url: str) -> bool:
    return url.strip().lower().startswith(SLACK_APP)


def channel_problem(url: str) -> str | None:
    """Why a ``slack-app://`` URL names no channel or user, or None."""
    channel = slack_channel(url)
    if _CHANNEL.match(channel):
        return None
    return (
        f"slack-app:// needs a channel id (C…) or a user id (U…), e.g. slack-app://C0123ABCD, "
        f"not {channel[:40]!r}"
    )


def escape(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally: ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_text(message: Notification) -> str:
    """The fallback text (notifications, screen readers): the title."""
    return _cut(message.title, TEXT_MAX)


def message_blocks(message: Notification) -> list[Block]:
    """Header (the title), the body, the buttons of a chain's message, its ack link."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(message.title, HEADER_MAX)}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _cut(escape(message.body), SECTION_MAX),
                "verbatim": True,
            },
        },
    ]
    if message.chain:
        blocks.append(
            {
                "type": "actions",
                "block_id": ACTIONS_BLOCK,
                "elements": [
                    _button("Acknowledge", ACK_ACTION, message.chain, style="primary"),
                    _button("Escalate", ESCALATE_ACTION, message.chain),
                ],
            }
        )
    if message.ack_url:
        link = f"<{escape(message.ack_url)}|Acknowledge in the browser>"
        blocks.append(
            {
                "type": "context",
                "block_id": LINK_BLOCK,
                "elements": [{"type": "mrkdwn", "text": link}],
            }
        )
    return blocks


def _button(text: str, action_id: str, chain: str, style: str = "") -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": chain,
    }
    if style:
        button["style"] = style
    return button


def slack_date(at: datetime) -> str:
    """An instant as Slack shows it in each reader's own time zone (UTC where it cannot)."""
    fallback = iso(at)
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def outcome_blocks(
    original: Sequence[Mapping[str, Any]], outcome: str, keep_buttons: bool
) -> list[Block]:
    """The message's blocks after a click: the buttons gone (kept after an escalation, the
    chain still waits for an ack), a line saying ``outcome`` (mrkdwn) added."""
    kept = [
        dict(block)
        for block in original
        if keep_buttons or block.get("block_id") not in (ACTIONS_BLOCK, LINK_BLOCK)
    ]
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
    return kept
