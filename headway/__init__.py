"""Headway: durable execution for Python with Kafka at its core.

Handlers are written with the names re-exported here from `headway.sdk`.
"""

from headway.sdk import *  # noqa: F403
from headway.sdk import __all__ as __all__
