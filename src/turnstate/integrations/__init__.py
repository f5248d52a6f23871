"""Drop-in memory for agent frameworks, each an optional extra.

Import the submodule you need (`turnstate.integrations.langchain`, `.llamaindex`,
`.openai_agents`); this package imports no framework, so `import turnstate` never needs one.
"""
