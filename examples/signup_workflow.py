r"""Signup: a workflow that creates a user and waits for the email verification click.

`run` executes exactly once per workflow id: it creates the user and "sends" a verification
email (both journaled `ctx.run` steps; the email is printed to the engine's output), then
waits on the durable promise "email-link". The shared handler `click` resolves that promise
with the secret from the link; `run` then returns whether the secret matched. While `run`
waits, the invocation suspends and holds no resources, for minutes or for days.

    headway dev examples/signup_workflow.py

    # start the workflow for id "ada" (fire and forget; 202 with the invocation id)
    curl -X POST localhost:8080/Signup/ada/run/send \
      -H 'content-type: application/json' -d '"ada@example.com"'

    # the engine prints: [email] to ada@example.com: verify at .../Signup/ada/click SECRET
    curl -X POST localhost:8080/Signup/ada/click \
      -H 'content-type: application/json' -d '"SECRET"'

    # the workflow's result; calling run again for "ada" returns it without running again
    curl localhost:8080/restate/workflow/Signup/ada/attach
    curl localhost:8080/restate/workflow/Signup/ada/output
"""

from __future__ import annotations

from typing import Any

from headway import Workflow, WorkflowContext, WorkflowSharedContext

signup = Workflow("Signup")


def create_user(user_id: str, email: str) -> str:
    """Stands in for a database insert; returns the new user's id."""
    print(f"[db] created user {user_id} <{email}>", flush=True)
    return user_id


def send_verification_email(user_id: str, email: str, secret: str) -> None:
    """Stands in for an email provider: prints the verification link."""
    print(
        f"[email] to {email}: verify at http://localhost:8080/Signup/{user_id}/click {secret}",
        flush=True,
    )


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> dict[str, Any]:
    """Creates the user, emails a secret, waits for the click and says whether it matched."""
    user_id = await ctx.run("create user", create_user, ctx.key(), email)
    secret = str(ctx.uuid())  # deterministic: the same on every replay
    await ctx.run("send verification email", send_verification_email, user_id, email, secret)
    clicked = await ctx.promise("email-link").value()
    verified = clicked == secret
    ctx.set("verified", verified)
    return {"user": user_id, "email": email, "verified": verified}


@signup.handler()
async def click(ctx: WorkflowSharedContext, secret: str) -> str:
    """The link in the email: hands the secret to the waiting `run`."""
    await ctx.promise("email-link").resolve(secret)
    return "thanks for clicking"
