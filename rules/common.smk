# Helper functions shared by the rule files: path builders, the run matrix,
# readers of stage winners. The only place for Python logic in the workflow.
DATES = list(config["data"]["scenes"])
