"""Plots the tools and scripts write, as PNG files.

matplotlib is imported when a plot is drawn (Agg backend: no display needed), so the robot
side runs without it; :func:`confusion_matrix` is numpy only.
"""

import numpy as np


def _pyplot():
    """matplotlib.pyplot on the Agg backend (ImportError names the missing package)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def confusion_matrix(labels, predictions, num_classes):
    """Count ``matrix[true, predicted]``; (num_classes, num_classes) int64."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f'labels {labels.shape} and predictions {predictions.shape} differ')
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def plot_confusion(matrix, class_names, path, title='Confusion matrix'):
    """Write a row-normalised confusion matrix as a PNG."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(matrix)
    size = max(5.0, 0.35 * n + 2)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised, cmap='Blues', vmin=0, vmax=1)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f'{title} (accuracy {100 * accuracy:.1f} %)')
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha='center', va='center', fontsize=6,
                            color='white' if normalised[i, j] > 0.5 else 'black')
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_histogram(values_ms, path, title, xlabel='latency (ms)'):
    """Write a histogram with p50 / p99 marked as a PNG."""
    values = np.asarray(values_ms, dtype=np.float64)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=min(60, max(10, len(values) // 20)), color='steelblue')
    for q, style in ((50, '--'), (99, ':')):
        if len(values):
            value = np.percentile(values, q)
            ax.axvline(value, color='black', linestyle=style, label=f'p{q} {value:.2f}')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('count')
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
