"""Powertools logger and metrics shared by every function (tracing is opt-in per environment)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="mwa-calib")
metrics = Metrics(namespace="MWACalib", service="mwa-calib")
