"""Sub-commands of ``tokenprobe``; one module each, discovered by ``probe.cli``."""
