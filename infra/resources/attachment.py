"""What apply changed on a distribution it does not own, so destroy can put it back.

Kept on the distribution itself as the ``opens:attached`` tag (tag values allow letters, digits,
spaces and ``_.:/=+-@``), written *before* the first change and never overwritten, so it always
describes the distribution as it was found, wherever destroy runs from.

``behavior=added`` — the pixel path had no behaviour; destroy removes the one apply added.
``behavior=was:<arn>`` — the path's behaviour existed; destroy restores its real-time log config
(``was:`` alone = it had none). ``logging=added|kept`` — whether apply turned standard logging on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attachment:
    behavior_added: bool
    original_realtime_arn: str
    logging_added: bool

    def encode(self) -> str:
        behavior = "added" if self.behavior_added else f"was:{self.original_realtime_arn}"
        return f"behavior={behavior} logging={'added' if self.logging_added else 'kept'}"

    @classmethod
    def decode(cls, value: str) -> Attachment:
        parts = dict(p.split("=", 1) for p in value.split() if "=" in p)
        behavior = parts.get("behavior", "added")
        return cls(
            behavior_added=behavior == "added",
            original_realtime_arn=behavior.removeprefix("was:") if behavior != "added" else "",
            logging_added=parts.get("logging") == "added",
        )
