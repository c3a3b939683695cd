"""Input checks shared by the core: each raises ValueError naming what was expected and got."""

import argparse

import numpy as np


def is_int(value):
    """Whether ``value`` is a Python or numpy integer (a bool is not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name, value, low=1):
    """Return ``value`` as an int if it is an integer >= ``low`` (bool is not)."""
    if not is_int(value) or value < low:
        raise ValueError(f'{name}: expected an int >= {low}, got {value!r}')
    return int(value)


def int_argument(low=1):
    """Return an argparse ``type=`` that reads an integer >= ``low``."""
    def parse(text):
        try:
            return check_int('value', int(text), low)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer >= {low}, got {text!r}') \
                from None
    return parse


def check_ints(name, values, shape, high=None):
    """Return an int64 array of ``shape`` (values in ``0..high - 1`` if ``high`` is given)."""
    values = np.asarray(values)
    if values.shape != tuple(shape) or (values.size and values.dtype.kind not in 'iu'):
        raise ValueError(f'{name}: expected an int array of shape {tuple(shape)}, got '
                         f'{values.dtype} {values.shape}')
    if high is not None and values.size and (values.min() < 0 or values.max() >= high):
        raise ValueError(f'{name}: expected values in 0..{high - 1}, got '
                         f'{values.min()}..{values.max()}')
    return values.astype(np.int64)


def check_rows(name, x, n_features=None):
    """Return a 2-D float array (from an array, a memory map or nested lists), NaN allowed."""
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f'{name}: expected a 2-D array (n_samples, n_features), got shape '
                         f'{x.shape}; reshape one sample with x.reshape(1, -1)')
    if x.dtype.kind != 'f':
        raise ValueError(f'{name}: expected a float array with NaN for missing values, got '
                         f'dtype {x.dtype}')
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f'{name}: expected {n_features} features, got shape {x.shape}')
    return x


def check_not_infinite(name, x, row_numbers=None):
    """Raise if a value of rows ``x`` is infinite (NaN is allowed: it marks a missing value).

    ``row_numbers`` gives the caller's number of each row, for the message.
    """
    if np.isinf(x).any():
        row, column = np.argwhere(np.isinf(x))[0]
        row = row if row_numbers is None else row_numbers[row]
        raise ValueError(f'{name} row {row}: expected finite values or NaN, got inf at feature '
                         f'{column}')
