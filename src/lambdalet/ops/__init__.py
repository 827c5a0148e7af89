"""Operator tools on top of the Lambda API: deploy (folder or SAM template), watch, invoke, ps."""
