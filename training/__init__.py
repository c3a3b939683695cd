"""Offline training scripts of iospstl_ros (PyTorch); one module per stage."""
