"""The closed-loop virtual track: pure logic, no rclpy.

`scenario` samples a seeded world from a YAML scenario, `track` holds where
things are, `dynamics` moves the train from the hub's applied power, `camera`
renders what the train's camera sees (pinhole model, the training data's sign
renderer), `metrics` judges a run. Time is always passed in.
"""
