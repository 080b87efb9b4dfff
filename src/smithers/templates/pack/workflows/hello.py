# smithers-source: seeded
# smithers-display-name: Hello
"""The hello workflow that `smithers init` scaffolds.

Run it with:  smithers workflow run hello --input '{"name": "world"}'
(or: smithers up .smithers/workflows/hello.py --input '{"name": "world"}')
It needs no agent: a good first check that smithers works here.
"""

from pydantic import BaseModel

from smithers import Ctx, Sequence, Task, workflow


class HelloInput(BaseModel):
    name: str = "world"


class Greeting(BaseModel):
    message: str


class Shout(BaseModel):
    message: str
    length: int


def shout(greeting: Greeting) -> Task:
    """A component: a plain function that returns nodes."""
    return Task(
        "shout",
        output=Shout,
        run=lambda: {"message": greeting.message.upper(), "length": len(greeting.message)},
    )


@workflow(input=HelloInput)
def hello(ctx: Ctx) -> Sequence:
    greeting = ctx.output("greet")  # None until "greet" has finished
    return Sequence(
        Task("greet", output=Greeting, value={"message": f"Hello, {ctx.input.name}!"}),
        greeting and shout(greeting),
    )
