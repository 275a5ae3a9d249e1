"""Text the demo generator draws from: tickets, knowledge-base articles, claims, code files.

Small hand-written corpora combined by seeded choice, so traces read like real traffic
without shipping a data set.
"""

from __future__ import annotations

import random

__all__ = [
    "CLAIMS_SYSTEM",
    "CLAIM_TYPES",
    "INTENTS",
    "KB_ARTICLES",
    "REPO_FILES",
    "REVIEW_SYSTEM",
    "SUPPORT_SYSTEM",
    "TEST_SUITES",
    "TICKETS",
    "claim_text",
    "kb_chunk",
    "ticket",
]

SUPPORT_SYSTEM = (
    "You are Acme's support assistant. Answer using only the knowledge-base excerpts "
    "provided; cite the excerpt ids you relied on. If an order is mentioned, look it up."
)
CLAIMS_SYSTEM = (
    "You are a claims assessor. Given the claim, the policy and the coverage check, decide "
    "approve/deny with a payout and a one-paragraph rationale citing policy clauses."
)
REVIEW_SYSTEM = (
    "You are a senior engineer reviewing a pull request. Read the changed files, run the "
    "relevant tests, and post a concise review with concrete, line-level suggestions."
)

# (intent, template); {order} and {days} are filled in by ``ticket``.
TICKETS: list[tuple[str, str]] = [
    ("refund", "Hi, I returned order {order} {days} days ago and still have no refund. "
               "Can you check where it is?"),
    ("refund", "I was charged twice for order {order}. Please refund the duplicate charge."),
    ("shipping", "My order {order} says shipped but tracking hasn't moved in {days} days."),
    ("shipping", "Can I change the delivery address for order {order}? It hasn't shipped yet."),
    ("account", "I can't log in after resetting my password, the link says it expired."),
    ("account", "How do I delete my account and all my data?"),
    ("billing", "Why did my subscription price go up this month? I didn't change plans."),
    ("billing", "Please send me an invoice with our VAT number for order {order}."),
    ("product", "Is the X200 blender dishwasher safe? The manual isn't clear."),
    ("product", "The charger that came with order {order} gets very hot. Is that normal?"),
]
INTENTS = sorted({intent for intent, _ in TICKETS})

KB_ARTICLES: dict[str, list[str]] = {
    "refund": ["Refund timelines", "Duplicate charges", "Returns without a receipt",
               "Refunds to expired cards"],
    "shipping": ["Tracking not updating", "Changing a delivery address", "Lost parcels",
                 "International customs delays"],
    "account": ["Password reset links", "Two-factor authentication", "Deleting your account",
                "Account data export"],
    "billing": ["Price changes on subscriptions", "VAT invoices", "Payment methods",
                "Failed payments"],
    "product": ["X200 blender care", "Charger safety", "Warranty coverage",
                "Replacement parts"],
}

_SENTENCES = [
    "Refunds are issued to the original payment method within 5–10 business days of the "
    "return being scanned at our warehouse.",
    "If the carrier scan has not updated for more than 5 days, open a trace request with "
    "the carrier and offer the customer a replacement.",
    "Customers can change the address until the order status is 'packed'; after that the "
    "carrier must redirect the parcel.",
    "Password reset links expire after 30 minutes and can be used once.",
    "Subscription prices follow the plan's price list; a change is announced 30 days ahead.",
    "VAT invoices can be regenerated from Orders → Invoice once a VAT id is on the account.",
    "Blender jars and lids are dishwasher safe on the top rack; the motor base is not.",
    "Chargers may feel warm during fast charging; hot to the touch means replace it under "
    "warranty.",
    "Duplicate authorisations usually drop off within 3 business days; captured duplicates "
    "are refunded by support.",
    "Account deletion removes personal data within 30 days except records kept for tax law.",
]


def ticket(rng: random.Random) -> tuple[str, str, str]:
    """(intent, ticket text, order id or '')."""
    intent, tpl = rng.choice(TICKETS)
    order = f"A{rng.randrange(100000, 999999)}" if "{order}" in tpl else ""
    return intent, tpl.format(order=order, days=rng.randint(2, 14)), order


def kb_chunk(rng: random.Random, intent: str) -> tuple[str, str]:
    """(document id, excerpt) of a knowledge-base chunk, mostly from the ticket's intent."""
    topic = intent if rng.random() < 0.7 else rng.choice(INTENTS)
    a = rng.randrange(len(KB_ARTICLES[topic]))
    title = KB_ARTICLES[topic][a]
    chunk = rng.randrange(6)
    text = f"{title}. " + " ".join(rng.sample(_SENTENCES, 2))
    return f"kb-{topic}-{a}#{chunk}", text


CLAIM_TYPES = ["auto_glass", "auto_collision", "travel_delay", "baggage_loss", "water_damage",
               "theft"]


def claim_text(rng: random.Random, claim_type: str, amount: float) -> str:
    what = {
        "auto_glass": "windscreen cracked by a stone on the motorway",
        "auto_collision": "rear-ended at a junction, bumper and tail light damaged",
        "travel_delay": "flight delayed 9 hours, hotel and meals paid",
        "baggage_loss": "checked bag lost on a connecting flight",
        "water_damage": "washing machine hose burst, kitchen floor damaged",
        "theft": "bicycle stolen from a locked garage",
    }[claim_type]
    return (f"Claim ({claim_type}): {what}. Amount claimed: EUR {amount:,.2f}. "
            f"Receipts attached: {rng.randint(1, 5)}.")


REPO_FILES = [
    "src/payments/refunds.py", "src/payments/ledger.py", "src/api/routes/orders.py",
    "src/api/auth.py", "src/models/order.py", "src/workers/email.py", "tests/test_refunds.py",
    "tests/test_orders.py", "src/utils/money.py", "src/config.py",
]
TEST_SUITES = ["tests/test_refunds.py", "tests/test_orders.py", "tests/test_ledger.py"]
