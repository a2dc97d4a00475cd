"""charged: collect from and control Charge Amps EV chargers."""

__version__ = "0.1.0"
