"""Trading modules. Each is a `BaseModule` registered under the `tradeplane.modules`
entry point group, built-in ones included (see pyproject.toml)."""
