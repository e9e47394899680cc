"""consent-gateway: server-side cookie consent and tracking gateway.

    from consent_gateway import ConsentGateway, load_config

    app = ConsentGateway(app, config=load_config("gateway.toml"))
"""

# first: chooses the compiled or the pure-Python rewriter core before anything imports it
from . import compiled as compiled
from .config import Config, load_config
from .decision import Decision
from .errors import ConfigError, ConsentGatewayError, SpoolError, StoreUnavailable, UpstreamError, UpstreamTimeout
from .events import ConsentEvent
from .limits import RequestLimits
from .middleware import ConsentGateway

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "ConsentEvent",
    "ConsentGateway",
    "ConsentGatewayError",
    "Decision",
    "RequestLimits",
    "SpoolError",
    "StoreUnavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "__version__",
    "load_config",
]
