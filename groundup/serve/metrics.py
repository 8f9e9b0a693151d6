"""The numbers a service owner watches, in Prometheus' text format (GET /metrics).

    groundup_requests_total{endpoint="/v1/chat/completions",status="200"} 12
    groundup_queue_depth 0                       requests waiting for a slot
    groundup_running_sequences 3                 sequences holding a slot
    groundup_kv_cache_usage_ratio 0.041          cache positions in use / allocated
    groundup_time_to_first_token_seconds_bucket{le="0.1"} 7   (a histogram: _bucket, _sum, _count)
    groundup_inter_token_latency_seconds_bucket{le="0.025"} 830
    groundup_prompt_tokens_total 1893
    groundup_generation_tokens_total 2210

Design choices:
- Written by hand (~100 lines) rather than with prometheus_client: the format is simple and
  worth seeing -- `# HELP` and `# TYPE` lines, then one `name{labels} value` per series; a
  histogram is cumulative `_bucket{le=...}` counters plus `_sum` and `_count`. The tests parse
  our output with prometheus_client's own parser.
- Gauges are read at scrape time from the backend (queue, running, cache), so they can never
  drift from the truth; counters and histograms are updated by the app as requests go.
- Time to first token is measured from the request's arrival (queueing and prefill included:
  what a user waits), inter-token latency between consecutive tokens of one stream.
"""

from __future__ import annotations

import bisect
import threading
from typing import Callable

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)        # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.count += 1

    def quantile(self, q: float) -> float:
        """an upper bound of the q-quantile: the first bucket edge that holds it (inf past the last)"""
        need, seen = q * self.count, 0
        for edge, c in zip((*self.buckets, float("inf")), self.counts):
            seen += c
            if seen >= need and seen > 0:
                return edge
        return float("inf")


def _num(v: float) -> str:
    return "+Inf" if v == float("inf") else repr(float(v)) if isinstance(v, float) else str(v)


class Metrics:
    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None):
        """gauges: name -> (help, function read at scrape time)"""
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.gauges = gauges or {}

    def request_done(self, endpoint: str, status: int) -> None:
        with self.lock:
            self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1

    def tokens(self, prompt: int, generated: int) -> None:
        with self.lock:
            self.prompt_tokens += prompt
            self.generation_tokens += generated

    def render(self) -> str:
        out: list[str] = []

        def head(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        with self.lock:
            head("groundup_requests_total", "counter", "HTTP requests answered, by endpoint and status code.")
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(f'groundup_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            for name, (help_, read) in self.gauges.items():
                head(name, "gauge", help_)
                out.append(f"{name} {_num(float(read()))}")
            for name, help_, h in (
                    ("groundup_time_to_first_token_seconds",
                     "Seconds from a request's arrival to its first generated token.", self.ttft),
                    ("groundup_inter_token_latency_seconds",
                     "Seconds between consecutive generated tokens of one stream.", self.itl)):
                head(name, "histogram", help_)
                cum = 0
                for edge, c in zip((*h.buckets, float("inf")), h.counts):
                    cum += c
                    out.append(f'{name}_bucket{{le="{_num(edge)}"}} {cum}')
                out.append(f"{name}_sum {_num(h.sum)}")
                out.append(f"{name}_count {h.count}")
            head("groundup_prompt_tokens_total", "counter", "Prompt tokens processed.")
            out.append(f"groundup_prompt_tokens_total {self.prompt_tokens}")
            head("groundup_generation_tokens_total", "counter", "Tokens generated.")
            out.append(f"groundup_generation_tokens_total {self.generation_tokens}")
        return "\n".join(out) + "\n"
