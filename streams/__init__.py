"""entwatch's streaming side: contracts, the Faust worker, storage sinks, metrics and the CLI."""
