"""Chapter 26's figures: the load test, the export latencies, the queue simulation."""

from __future__ import annotations

import matplotlib.pyplot as plt

def _clients_axis(ax, table: dict) -> None:
    ticks = sorted({r["concurrency"] for rows in table.values() for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("concurrent clients")


COLORS = {"fp32 batched": "C0", "fp32 unbatched": "C3", "int8 batched": "C2", "small batched": "C1"}


def plot_throughput(table: dict, ax=None):
    """Generated tokens per second against the number of concurrent clients, one line per server;
    the bars span the rounds' minimum and maximum."""
    ax = ax or plt.gca()
    for config, rows in table.items():
        c = [r["concurrency"] for r in rows]
        mean = [r["throughput"] for r in rows]
        err = [[m - r["throughput_min"] for m, r in zip(mean, rows)],
               [r["throughput_max"] - m for m, r in zip(mean, rows)]]
        ax.errorbar(c, mean, yerr=err, marker="o", capsize=3, label=config, color=COLORS.get(config))
    _clients_axis(ax, table)
    ax.set_ylabel("throughput (generated tokens / s)")
    ax.set_title("throughput under load")
    ax.legend(fontsize=8)
    return ax


def plot_latency(table: dict, ax=None, metric: str = "latency"):
    """p50 (solid) and p95 (dashed) of ``metric`` (``"latency"`` or ``"ttft"``) in ms."""
    ax = ax or plt.gca()
    for config, rows in table.items():
        c = [r["concurrency"] for r in rows]
        color = COLORS.get(config)
        ax.plot(c, [1000 * r[f"{metric}_p50"] for r in rows], "o-", color=color, label=f"{config} p50")
        ax.plot(c, [1000 * r[f"{metric}_p95"] for r in rows], "s--", color=color, alpha=0.6,
                label=f"{config} p95")
    _clients_axis(ax, table)
    ax.set_yscale("log")
    ax.set_ylabel(f"{'time to first token' if metric == 'ttft' else 'request latency'} (ms)")
    ax.set_title("time to first token" if metric == "ttft" else "latency (send -> last token)")
    ax.legend(fontsize=6, ncol=2)
    return ax


def plot_export(record: dict, ax=None):
    """Decode-step time (ms, CPU) per runtime, with the one-off setup seconds in the labels."""
    ax = ax or plt.gca()
    names = [n for n, r in record["runtimes"].items() if "step_s" in r]
    steps = [1000 * record["runtimes"][n]["step_s"] for n in names]
    bars = ax.barh(names, steps, color="C0")
    for bar, n in zip(bars, names):
        setup = record["runtimes"][n]["setup_s"]
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f"  {bar.get_width():.2f} ms" + (f" (setup {setup:.0f} s)" if setup else ""),
                va="center", fontsize=8)
    ax.set_xlabel("one decoding step, batch 1 (ms of CPU time)")
    ax.set_xlim(0, max(steps) * 1.6)
    ax.invert_yaxis()
    ax.set_title("the same graph, four runtimes")
    return ax


def plot_queue(unbounded: dict, bounded: dict, max_queue: int, ax=None):
    """Waiting time of each accepted request against its arrival time."""
    ax = ax or plt.gca()
    ax.plot(unbounded["arrival_s"], unbounded["wait_s"], label="unbounded queue", color="C3")
    ax.plot(bounded["arrival_s"], bounded["wait_s"],
            label=f"queue of {max_queue} ({bounded['refused']} of {bounded['offered']} refused)",
            color="C0")
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("time waiting in the queue (s)")
    ax.set_title("arrivals faster than service")
    ax.legend(fontsize=8)
    return ax


__all__ = ["plot_export", "plot_latency", "plot_queue", "plot_throughput"]
