"""What every inferwatch distribution shares: the config model and loader, the contract between the
agent and the worker (data stream names, document ids, the categorical string rule, the
tokenizer), the data-dir layout, exit codes and the command assembly."""

__version__ = "0.1.0"
