"""Who owns which bucket or schema: a ledger the leader keeps in the peer app databag.

Its source is ``common/ownership.py``; the seaweedfs charm (names are buckets)
and the cratedb charm (names are schemas) ship a copy (see ``common/README.md``).
Pure: plain data in, plain data out, no ops.

The rules, which neither relation ids nor hook order take part in:

- A name belongs to the relation it was first served to, and never moves
  while that relation exists. Another relation asking for it is refused.
- A relation that asks for another name gives up the old one; a relation
  that leaves gives up all of its names. A given-up name is *retained*: its
  data stays, and nobody is served it until the operator hands it to an
  application (``grant-retained``) or deletes it (``purge-retained``).
- A name nobody owns goes to the one relation asking for it. When several
  ask for it at once, none is served: the status names them all.
- A name that holds data the ledger does not know of (made by hand, or
  before the charm kept a ledger) counts as retained, from an unknown owner.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

UNKNOWN_OWNER = ""


@dataclass(frozen=True)
class Claim:
    """What the ledger says about one name."""

    # The application it is served to, or was retained from ("" when unknown).
    app: str
    # The relation it is served to; None while it is retained.
    relation_id: int | None = None
    # Retained, and handed by the operator to this application.
    handed_to: str = ""

    @property
    def retained(self) -> bool:
        """True when no relation is served this name."""
        return self.relation_id is None

    def describe(self) -> str:
        """``served to APP (relation N)`` or ``retained from APP``, for messages."""
        if self.relation_id is not None:
            return f"served to {self.app} (relation {self.relation_id})"
        origin = f"retained from {self.app}" if self.app else "retained, of an unknown owner"
        return f"{origin}, handed to {self.handed_to}" if self.handed_to else origin


@dataclass(frozen=True)
class Ask:
    """One relation asking for one name (already validated as a name)."""

    relation_id: int
    app: str
    name: str


@dataclass(frozen=True)
class Outcome:
    """What ``settle`` decided."""

    ledger: dict[str, Claim]
    # Why an ask is not served, by (relation id, name): for the operator (the status).
    refused: dict[tuple[int, str], str] = field(default_factory=dict)
    # The same, as the asking application is told it (it names no other application).
    told: dict[tuple[int, str], str] = field(default_factory=dict)
    # Names given up in this pass, with the claim they had: their grants must go.
    released: tuple[tuple[str, Claim], ...] = ()
    # One line per change, for the log.
    changes: tuple[str, ...] = ()

    def served(self, ask: Ask) -> bool:
        """True when ``ask`` is served."""
        return is_served(self.ledger, ask)


def is_served(ledger: Mapping[str, Claim], ask: Ask) -> bool:
    """True when the ledger gives ``ask.name`` to ``ask.relation_id``."""
    claim = ledger.get(ask.name)
    return claim is not None and claim.relation_id == ask.relation_id


def names_of(ledger: Mapping[str, Claim], relation_id: int) -> list[str]:
    """The names served to one relation."""
    return sorted(name for name, claim in ledger.items() if claim.relation_id == relation_id)


def retained(ledger: Mapping[str, Claim]) -> dict[str, Claim]:
    """The retained names and their claims."""
    return {name: claim for name, claim in sorted(ledger.items()) if claim.retained}


def settle(
    ledger: Mapping[str, Claim],
    asks: Iterable[Ask],
    live_relations: Iterable[int],
    holds_data: Callable[[str], bool],
    undecided: Iterable[int] = (),
) -> Outcome:
    """Apply the rules to what the relations ask for now.

    ``live_relations``: every relation of the endpoint that still exists
    (asking or not). ``undecided``: live relations whose request cannot be
    read or is invalid right now; they keep what they have. ``holds_data(name)``
    is called only for names the ledger does not know, to tell a new name from
    one that holds someone's data.
    """
    # One ask per relation and name, however often a relation repeats it.
    asks = list({(a.relation_id, a.name): a for a in asks}.values())
    live = set(live_relations)
    keep = set(undecided) & live
    book = dict(ledger)
    refused: dict[tuple[int, str], str] = {}
    told: dict[tuple[int, str], str] = {}
    released: list[tuple[str, Claim]] = []

    def refuse(ask: Ask, detail: str, public: str) -> None:
        refused[(ask.relation_id, ask.name)] = detail
        told[(ask.relation_id, ask.name)] = public

    changes: list[str] = []
    wanted = {(a.relation_id, a.name) for a in asks}

    # Give up what is no longer asked for, or whose relation is gone.
    for name, claim in sorted(book.items()):
        if claim.relation_id is None or claim.relation_id in keep:
            continue
        if (claim.relation_id, name) in wanted:
            continue
        why = "left" if claim.relation_id not in live else "asked for another name"
        book[name] = Claim(app=claim.app)
        released.append((name, claim))
        changes.append(f"{name!r} retained: {claim.app} (relation {claim.relation_id}) {why}")

    by_name: dict[str, list[Ask]] = {}
    for ask in asks:
        by_name.setdefault(ask.name, []).append(ask)
    for name, askers in sorted(by_name.items()):
        known = book.get(name)
        taken = f"{name!r} belongs to another application; ask for another"
        if known is not None and known.relation_id is not None:
            for ask in askers:
                if ask.relation_id != known.relation_id:
                    refuse(ask, f"{name!r} is {known.describe()}", taken)
            continue
        if known is not None and known.handed_to:
            taking = [a for a in askers if a.app == known.handed_to]
            others = [a for a in askers if a.app != known.handed_to]
            for ask in others:
                refuse(ask, f"{name!r} is {known.describe()}", taken)
            if len(taking) == 1:
                book[name] = Claim(app=taking[0].app, relation_id=taking[0].relation_id)
                changes.append(
                    f"{name!r} served to {taking[0].app} (relation {taking[0].relation_id}),"
                    " as the operator handed it over"
                )
            else:
                for ask in taking:
                    refuse(ask, _contested(name, taking), _CONTESTED.format(name=name))
            continue
        if known is not None:
            origin = f"retained from {known.app}" if known.app else "of an unknown owner"
            for ask in askers:
                refuse(
                    ask,
                    f"{name!r} holds data {origin}; the operator can hand it over "
                    "(grant-retained) or delete it (purge-retained)",
                    _KEPT.format(name=name),
                )
            continue
        if len(askers) > 1:
            for ask in askers:
                refuse(ask, _contested(name, askers), _CONTESTED.format(name=name))
            continue
        if holds_data(name):
            book[name] = Claim(app=UNKNOWN_OWNER)
            refuse(
                askers[0],
                f"{name!r} holds data of an unknown owner; the operator can hand it "
                "over (grant-retained) or delete it (purge-retained)",
                _KEPT.format(name=name),
            )
            changes.append(f"{name!r} found holding data of an unknown owner: retained")
            continue
        book[name] = Claim(app=askers[0].app, relation_id=askers[0].relation_id)
        changes.append(f"{name!r} served to {askers[0].app} (relation {askers[0].relation_id})")
    return Outcome(book, refused, told, tuple(released), tuple(changes))


_KEPT = (
    "{name!r} holds data kept from another application; only this charm's operator can "
    "hand it over (grant-retained)"
)
_CONTESTED = "{name!r} is asked for by several applications at once: none is served"


def _contested(name: str, askers: list[Ask]) -> str:
    who = ", ".join(f"{a.app} (relation {a.relation_id})" for a in askers)
    return f"{name!r} is asked for by {who} at once; remove all but one of these relations"


def seed(served: Iterable[Ask]) -> dict[str, Claim]:
    """The first ledger of a store that had none, from what was served before it.

    Used once, on upgrade from a charm that kept no ledger: it keeps exactly
    what the old charm served, whose rule was the lowest relation id.
    """
    book: dict[str, Claim] = {}
    for ask in sorted(served, key=lambda a: a.relation_id):
        book.setdefault(ask.name, Claim(app=ask.app, relation_id=ask.relation_id))
    return book


def hand_over(ledger: Mapping[str, Claim], name: str, app: str) -> dict[str, Claim]:
    """The ledger with a retained ``name`` handed to ``app``; ValueError when not retained."""
    claim = ledger.get(name)
    if claim is None:
        raise ValueError(f"{name!r} is not retained (not in the ledger)")
    if not claim.retained:
        raise ValueError(f"{name!r} is {claim.describe()}; only retained names can be handed over")
    if not app:
        raise ValueError("name the application to hand it to")
    return {**ledger, name: replace(claim, handed_to=app)}


def forget(ledger: Mapping[str, Claim], name: str) -> dict[str, Claim]:
    """The ledger without a retained ``name`` (after purging it); ValueError otherwise."""
    claim = ledger.get(name)
    if claim is None or not claim.retained:
        what = "not in the ledger" if claim is None else claim.describe()
        raise ValueError(f"{name!r} is {what}; only retained names can be purged")
    return {k: v for k, v in ledger.items() if k != name}


def retain(ledger: Mapping[str, Claim], name: str, app: str = UNKNOWN_OWNER) -> dict[str, Claim]:
    """The ledger with a name nobody owns recorded as retained (made by the operator)."""
    if name in ledger:
        return dict(ledger)
    return {**ledger, name: Claim(app=app)}


def dump(ledger: Mapping[str, Claim]) -> str:
    """The ledger as the peer databag keeps it (JSON, sorted)."""
    return json.dumps(
        {
            name: {
                "app": claim.app,
                "relation": claim.relation_id,
                **({"handed-to": claim.handed_to} if claim.handed_to else {}),
            }
            for name, claim in sorted(ledger.items())
        },
        sort_keys=True,
    )


def load(raw: str | None) -> dict[str, Claim] | None:
    """The ledger from the peer databag; None when there is none yet (or it is unreadable)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    book: dict[str, Claim] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            continue
        relation = entry.get("relation")
        book[str(name)] = Claim(
            app=str(entry.get("app", "")),
            relation_id=relation if isinstance(relation, int) else None,
            handed_to=str(entry.get("handed-to", "")),
        )
    return book
