"""The daemon's counters and histograms: one ``Metrics`` per App, with its own registry.

The composition root builds one and hands it to the edges, the processing worker and the
outbox sender, which count what they do (no global registry, so a test can build several
Apps side by side). What is better read from the store (backlog, replies by status,
charges, mailboxes) is not counted here: ``intake.web.collectors`` asks the store at
scrape time. Label values are codes and outcomes, never addresses or message ids, so the
number of series stays small.

It sits below every layer and imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# Accepting is fast (a group commit), processing slower: buckets in seconds for each.
_ACCEPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROCESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    # labels: command (RCPT, DATA; CONNECT and MAIL for the limits' 421/452), code (250, ...)
    smtp_replies: Counter
    accept_seconds: Histogram  # DATA received until its 250 (COMMIT 1 done)
    processed: Counter  # labels: outcome (ticket_created, follow_up, ignored, flood, failed, ...)
    processing_seconds: Histogram
    deliveries: Counter  # labels: result (sent, failed, dead)
    floods: Counter  # labels: scope (address, domain): mail kept as flood past a limit
    reflection_suppressed: Counter  # labels: scope (ip, domain): confirmations not sent

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            smtp_replies=Counter(
                "intake_smtp_replies",
                "SMTP replies to RCPT and DATA, and the limits' refusals at CONNECT and MAIL, "
                "by reply code (250 accepted, 4xx/5xx refused)",
                ["command", "code"],
                registry=registry,
            ),
            accept_seconds=Histogram(
                "intake_smtp_accept_seconds",
                "Seconds from the end of DATA to the 250 (the message is stored)",
                buckets=_ACCEPT_BUCKETS,
                registry=registry,
            ),
            processed=Counter(
                "intake_processed",
                "Stored messages processed by the worker, by outcome",
                ["outcome"],
                registry=registry,
            ),
            processing_seconds=Histogram(
                "intake_processing_seconds",
                "Seconds to process one stored message (COMMIT 2)",
                buckets=_PROCESS_BUCKETS,
                registry=registry,
            ),
            deliveries=Counter(
                "intake_outbox_deliveries",
                "Reply delivery attempts by the outbox sender, by result",
                ["result"],
                registry=registry,
            ),
            floods=Counter(
                "intake_flood",
                "Mail past an inbound flood limit (kept on the sender's ticket, unanswered), "
                "by the limit reached: per sender address or per sender domain",
                ["scope"],
                registry=registry,
            ),
            reflection_suppressed=Counter(
                "intake_reflection_suppressed",
                "Confirmations not sent because the mail's source had us confirm to too many "
                "distinct addresses this hour, by cap: per sending IP or per From domain",
                ["scope"],
                registry=registry,
            ),
        )

    def smtp_reply(self, command: str, reply: str) -> None:
        self.smtp_replies.labels(command=command, code=reply[:3]).inc()
