"""What every benchmark returns, and the table the bench command prints."""

import statistics
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One measurement over several rounds, optionally beside a baseline measured in the same run.

    `higher_is_better` says which way the ratio to the baseline should go (throughput: True;
    latency, memory, seconds: False).
    """

    name: str
    unit: str
    values: list[float]
    baseline_name: str = ""
    baseline_values: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    target: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_values:
            return None
        baseline = statistics.median(self.baseline_values)
        return self.median / baseline if baseline else None
