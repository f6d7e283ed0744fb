"""Mail to status page subscribers: one StatusMailWorkflow per notification (its id is the notification's, so
a notification is fanned out once however often it is asked for), and one SubscriptionWorkflow per
subscribe / confirm / unsubscribe request from the public page."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.subscribers import StatusMailActivities
    from domain.statuspage.mail import (
        FanoutResult,
        Notification,
        SubscriptionRequest,
        SubscriptionResult,
        TokenInput,
    )
    from workflows import options


def mail_workflow_id(notification_id: str) -> str:
    return f"status-mail-{notification_id}"[:255]


@workflow.defn(name="StatusMailWorkflow")
class StatusMailWorkflow:
    @workflow.run
    async def run(self, notification: Notification) -> FanoutResult:
        result: FanoutResult = await workflow.execute_activity_method(
            StatusMailActivities.notify_subscribers, notification,
            summary=f"Mail subscribers: {notification.subject}"[:200], **options.STATUS_MAIL)
        return result


@workflow.defn(name="SubscriptionWorkflow")
class SubscriptionWorkflow:
    """subscribe (mails the confirm link), confirm, unsubscribe: retried until the store and mail server answer."""

    @workflow.run
    async def run(self, action: str, request: SubscriptionRequest | None, token: TokenInput | None
                  ) -> SubscriptionResult:
        result: SubscriptionResult
        if action == "subscribe" and request is not None:
            result = await workflow.execute_activity_method(
                StatusMailActivities.request_subscription, request, summary="Subscribe", **options.NOTIFY)
        elif action == "confirm" and token is not None:
            result = await workflow.execute_activity_method(
                StatusMailActivities.confirm_subscription, token, summary="Confirm a subscription", **options.NOTIFY)
        elif action == "unsubscribe" and token is not None:
            result = await workflow.execute_activity_method(
                StatusMailActivities.unsubscribe, token, summary="Unsubscribe", **options.NOTIFY)
        else:
            raise ApplicationError(f"unknown action {action!r}", non_retryable=True)
        return result
