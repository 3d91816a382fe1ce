#!/usr/bin/env python3
"""make_template_goldens.py: renders every template in ../shared/chat-templates over a set of
conversations with transformers' own chat-template renderer (render_jinja_template, the code
behind apply_chat_template: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, its tojson, raise_exception, strftime_now) and writes
tests/golden/templates/<template>.json = [{name, messages, vars, add_generation_prompt,
expected | error, raised}]. The C tests compare byte for byte; they never need Python.

Run with the project venv:  /work/venv/bin/python scripts/make_template_goldens.py
strftime_now is pinned to NOW (UTC) here and via BRISK_TEMPLATE_NOW in the C test.
"""
import copy
import datetime as _dt
import json
import pathlib
import sys

import jinja2
import transformers.utils.chat_template_utils as ctu
from transformers.utils.chat_template_utils import render_jinja_template

NOW = 1700000000  # 2023-11-14 22:13:20 UTC


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(NOW, tz=_dt.timezone.utc).replace(tzinfo=None)


ctu.datetime = _FixedDatetime  # strftime_now reads datetime.now()

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "chat-templates"
OUT = ROOT / "tests" / "golden" / "templates"

TOKENS = {  # bos/eos of each family (from the models' tokenizer_config.json)
    "meta-llama": ("<|begin_of_text|>", "<|eot_id|>"),
    "Qwen": (None, "<|im_end|>"),
    "google-gemma": ("<bos>", "<eos>"),
    "mistralai": ("<s>", "</s>"),
}

UNICODE = 'héllo wörld — 世界 🎉 "quoted" \'single\' back\\slash\ttab'

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather — in °C",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
        "return": {"type": "string"},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}},
}


def conv(*turns):
    return [{"role": r, "content": c} for r, c in turns]


BASE_CASES = [
    ("user_only", conv(("user", "Hello!")), {}, True),
    ("system_user", conv(("system", "You are terse."), ("user", "What is 2+2?")), {}, True),
    ("multi_turn_no_prompt",
     conv(("system", "Be helpful."), ("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")),
     {}, False),
    ("multi_turn_no_system",
     conv(("user", "Hi"), ("assistant", "Hey."), ("user", "Bye"), ("assistant", "See you.")), {}, False),
    ("unicode", conv(("user", UNICODE), ("assistant", "Ünïcödé ✓ 日本語"), ("user", "emoji 🙂 again")), {}, True),
    ("whitespace", conv(("system", "  padded system \n"), ("user", "\n  spaced user  \n\n")), {}, True),
    ("ends_with_assistant", conv(("user", "Q"), ("assistant", "A")), {}, False),
    ("double_user_rejected", conv(("user", "one"), ("user", "two")), {}, True),
    ("system_only", conv(("system", "Only a system message.")), {}, True),
    ("twenty_turns", [m for i in range(10) for m in conv(("user", f"Question {i}: what is {i}*{i}?"),
                                                          ("assistant", f"It is {i * i}."))], {}, True),
]

TOOL_CALL = {"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}

TOOL_CASES = [
    ("tools_first_turn", conv(("system", "Use tools."), ("user", "Weather in Zürich?")),
     {"tools": [WEATHER_TOOL, TIME_TOOL]}, True),
    ("tools_call_and_result",
     conv(("user", "Weather in Zürich?")) +
     [{"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
      {"role": "tool", "tool_call_id": "call12345", "content": '{"temp": 21.5, "unit": "°C"}'}] +
     conv(("assistant", "It is 21.5 °C."), ("user", "Thanks")),
     {"tools": [WEATHER_TOOL]}, True),
    ("tool_call_no_tools_var",
     conv(("user", "Weather?")) +
     [{"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
      {"role": "tool", "tool_call_id": "call12345", "content": "sunny"}],
     {}, True),
    ("tools_no_user_rejected", conv(("system", "sys only")), {"tools": [WEATHER_TOOL]}, True),
    ("two_tool_calls",
     conv(("user", "Weather and time?")) +
     [{"role": "assistant", "content": "Let me check.",
       "tool_calls": [TOOL_CALL, {"id": "call67890", "type": "function",
                                  "function": {"name": "get_time", "arguments": "{\"tz\": \"UTC\"}"}}]},
      {"role": "tool", "tool_call_id": "call12345", "content": "sunny"},
      {"role": "tool", "tool_call_id": "call67890", "content": "12:00"}],
     {"tools": [WEATHER_TOOL, TIME_TOOL]}, True),
]

PER_TEMPLATE = {
    "Qwen-Qwen3-0.6B": [
        ("think_in_content",
         conv(("user", "2+2?"), ("assistant", "<think>\nadd them\n</think>\n\n4"), ("user", "3+3?"),
              ("assistant", "<think>\nagain\n</think>\n\n6")), {}, False),
        ("reasoning_content_field",
         conv(("user", "2+2?")) + [{"role": "assistant", "content": "4", "reasoning_content": "simple sum"}], {}, False),
        ("thinking_alias", conv(("user", "hi")) + [{"role": "assistant", "content": "yo", "thinking": "greet back"}],
         {}, False),
        ("enable_thinking_false", conv(("user", "Hi")), {"enable_thinking": False}, True),
        ("tool_response_as_user", conv(("user", "<tool_response>x</tool_response>")), {}, True),
    ],
    "meta-llama-Llama-3.1-8B-Instruct": [
        ("date_string", conv(("user", "Hi")), {"date_string": "01 Jan 2025"}, True),
        ("tools_in_system", conv(("user", "Weather?")), {"tools": [WEATHER_TOOL], "tools_in_user_message": False}, True),
        ("builtin_tools",
         conv(("system", "sys"), ("user", "Search the web for brisk")) +
         [{"role": "assistant", "tool_calls": [{"type": "function", "function": {
             "name": "brave_search", "arguments": {"query": "brisk"}}}]},
          {"role": "ipython", "content": {"results": ["a", "b"]}}],
         {"builtin_tools": ["brave_search", "code_interpreter"]}, True),
    ],
    "meta-llama-Llama-3.2-3B-Instruct": [
        ("strftime_now", conv(("user", "What day is it?")), {}, True),
        ("date_string", conv(("user", "Hi")), {"date_string": "01 Jan 2025"}, True),
    ],
    "mistralai-Mistral-Nemo-Instruct-2407": [
        ("bad_tool_id_rejected",
         conv(("user", "Weather?")) +
         [{"role": "assistant", "tool_calls": [{"id": "short", "type": "function", "function": {
             "name": "get_weather", "arguments": {"city": "Paris"}}}]}],
         {}, True),
        ("tool_role_rejected", conv(("user", "hi"), ("developer", "x")), {}, True),
    ],
}


def render(template, messages, variables, agp, bos, eos):
    kwargs = dict(variables)
    if bos is not None:
        kwargs.setdefault("bos_token", bos)
    if eos is not None:
        kwargs.setdefault("eos_token", eos)
    tools = kwargs.pop("tools", None)
    documents = kwargs.pop("documents", None)
    # apply_chat_template drops None-valued message keys before rendering
    msgs = [{k: v for k, v in m.items() if v is not None} for m in copy.deepcopy(messages)]
    rendered, _ = render_jinja_template(conversations=[msgs], tools=tools, documents=documents,
                                        chat_template=template, add_generation_prompt=agp, **kwargs)
    return rendered[0]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for path in sorted(SHARED.glob("*.jinja")):
        stem = path.name[: -len(".jinja")]
        template = path.read_text(encoding="utf-8")
        bos, eos = next(v for k, v in TOKENS.items() if stem.startswith(k))
        cases = []
        for name, messages, variables, agp in BASE_CASES + TOOL_CASES + PER_TEMPLATE.get(stem, []):
            variables = dict(variables)
            if bos is not None:
                variables.setdefault("bos_token", bos)
            if eos is not None:
                variables.setdefault("eos_token", eos)
            case = {"name": name, "messages": messages, "vars": variables, "add_generation_prompt": agp}
            try:
                case["expected"] = render(template, messages, variables, agp, bos, eos)
            except jinja2.exceptions.TemplateError as e:
                # raise_exception raises a bare TemplateError; everything else is a subclass
                case["error"] = str(e)
                case["raised"] = type(e) is jinja2.exceptions.TemplateError
            except Exception as e:  # TypeError etc. from the template's own code
                case["error"] = f"{type(e).__name__}: {e}"
                case["raised"] = False
            cases.append(case)
        out = OUT / f"{stem}.json"
        out.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        n_err = sum("error" in c for c in cases)
        print(f"{out.relative_to(ROOT)}: {len(cases)} cases ({n_err} errors)", file=sys.stderr)


if __name__ == "__main__":
    main()
