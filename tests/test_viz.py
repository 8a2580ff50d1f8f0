"""roadmap_lib.viz: the shared plotting helpers."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from roadmap_lib.viz import moving_average, plot_training_log


def test_moving_average():
    assert moving_average([1, 3, 5, 7], window=2) == [1, 2, 4, 6]


    assert moving_average([4.0], window=3) == [4.0]
    with pytest.raises(ValueError, match="window"):
        moving_average([1.0], window=0)


def test_plot_training_log_draws_on_the_given_axes():
    log = [{"step": s, "loss": 5.0 - s / 10} for s in range(1, 21)]
    log[9]["val_loss"], log[19]["val_loss"] = 4.2, 3.4
    fig, ax = plt.subplots()
    assert plot_training_log(log, ax=ax, smooth=5, baseline=(4.0, "baseline")) is ax
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:3] == ["train (one batch)", "train (5-step mean)", "validation"]
    val = ax.get_lines()[2]
    assert list(val.get_xdata()) == [10, 20] and list(val.get_ydata()) == [4.2, 3.4]
    plt.close(fig)
    new_ax = plot_training_log(log)  # no axes given: a new figure
    assert new_ax.figure is not fig
    plt.close(new_ax.figure)
    with pytest.raises(ValueError, match="log: expected"):
        plot_training_log([{"step": 1}])
