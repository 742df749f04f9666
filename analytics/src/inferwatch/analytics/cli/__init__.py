"""The analytics commands (``inferwatch analytics``, ``inferwatch baseline``, ``inferwatch report``),
one module per command group, registered by ``analytics.commands``. The backends they run on are
wired in ``analytics.wiring``; what they print is in ``analytics.display``."""
