"""The commands, one module per group; each module's ``register(commands)`` adds its own.

In a module, each command's parser (its name, help line and arguments) is declared right
above the handler that runs it.
"""
