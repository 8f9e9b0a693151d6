"""The coding agent: a model in a loop with real tools, and the safety around them.

    from groundup.agent.loop import Agent, AgentResult        # run → step → query → execute
    from groundup.agent.tools import Toolbox, ToolResult      # the eight tools, confined
    from groundup.agent.prompt import system_prompt           # environment, tools, memory

See docs/06-agent.md for the walkthrough.
"""
