"""The `reports:` section of the config: our users' targets, each one a number they can change or turn off.

```yaml
reports:
  targets:
    mttd: 5m                   # detect: first alert's start -> declared, met when below
    mtta: 5m                   # acknowledge, met when below
    mttr: 30m                  # resolve (from declaration), met when below
    mtbf: 7d                   # between failures, per service: a minimum, met when above
    false_positive_rate: 5%    # stood down / declared among alert-opened incidents, met when below
    statistic: mean            # the figure compared with the duration targets: mean | p50 | p90
```
`null` turns a target off (`mttm` is off unless set)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from domain.models.base import Duration, _Strict

Statistic = Literal["mean", "p50", "p90"]


def _rate(value: Any) -> Any:
    """'5%' -> 0.05; numbers pass through (0.05)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"invalid percentage {value!r}: use e.g. 5% or 0.05") from None
    return value


Rate = Annotated[float, BeforeValidator(_rate), Field(ge=0, le=1)]


class ReportTargets(_Strict):
    mttd: Duration | None = timedelta(minutes=5)
    mtta: Duration | None = timedelta(minutes=5)
    mttm: Duration | None = None
    mttr: Duration | None = timedelta(minutes=30)
    mtbf: Duration | None = timedelta(days=7)  # a minimum, unlike the others
    false_positive_rate: Rate | None = 0.05
    statistic: Statistic = "mean"


class ReportsConfig(_Strict):
    targets: ReportTargets = Field(default_factory=ReportTargets)
