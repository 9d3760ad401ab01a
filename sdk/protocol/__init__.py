"""The Restate service protocol (V5 to V7): framing, messages and the journal codec.

Headway's engine speaks it to HTTP deployments, and its SDK serves it, so services written
with the official Restate SDKs run on Headway and Headway's services run behind HTTP.
"""
