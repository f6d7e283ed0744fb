"""The weekly review digest: open and overdue action items grouped by owner, with their incidents and due
dates (Slack mrkdwn and plain-text mail from the same facts)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from domain.actions.models import ActionItem, ItemStatus
from domain.actions.schedule import overdue


class Digest(BaseModel):
    subject: str
    slack: str
    mail: str
    open: int
    overdue: int
    owners: list[str] = Field(default_factory=list)


def digest(items: list[ActionItem], today: date) -> Digest:
    open_items = sorted((i for i in items if i.status == ItemStatus.open), key=lambda i: (i.owner, i.due, i.aid))
    late = [i for i in open_items if overdue(i, today)]
    owners = sorted({i.owner for i in open_items})
    subject = f"Action items review {today:%Y-%m-%d}: {len(open_items)} open, {len(late)} overdue"
    if not open_items:
        text = f"{subject}. Nothing is outstanding."
        return Digest(subject=subject, slack=f"*{text}*", mail=text + "\n", open=0, overdue=0)
    slack, mail = [f"*{subject}*"], [subject, ""]
    for owner in owners:
        mine = [i for i in open_items if i.owner == owner]
        slack.append(f"\n*{owner}* ({len(mine)})")
        mail.append(f"{owner} ({len(mine)})")
        for i in mine:
            late_by = (today - i.due).days
            flag = f"OVERDUE {late_by} d" if late_by > 0 else f"due {i.due:%Y-%m-%d}"
            ticket = f" <{i.ticket.url}|{i.ticket.key}>" if i.ticket else ""
            slack.append(f"• `{i.aid}` {i.priority.value} {_mrkdwn(i.text)} — {flag} — `{i.incident_id}`{ticket}")
            mail.append(f"  - [{i.aid}] {i.priority.value} {i.text} -- {flag} -- {i.incident_id}"
                        + (f" ({i.ticket.url})" if i.ticket else ""))
        mail.append("")
    return Digest(subject=subject, slack="\n".join(slack), mail="\n".join(mail), open=len(open_items),
                  overdue=len(late), owners=owners)


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
