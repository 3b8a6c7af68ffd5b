"""carewatch's composition root: settings, embedded services, the runtime that wires the stages, the CLI."""
