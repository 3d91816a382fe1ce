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


# Language features one at a time (tests/golden/template-snippets.json): Python printing of
# values, arithmetic, filters, tests, methods, scoping, macros, whitespace control.
SNIPPETS = [
    ("{{ 1.0 }}|{{ 1 }}|{{ true }}|{{ none }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 1e-5 }}|{{ 1/3 }}|{{ 2.5e15 }}", {}),
    ("{{ [1, 'a', none, true, 1.5] }}|{{ {'a': [1, \"b'\"], 'c': {}} }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}", {}),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }} {{ 6 / 2 }}", {}),
    ("{{ 'ab' * 3 }}|{{ 3 * 'x' }}|{{ [1] * 2 }}|{{ 1 + 2.0 }}|{{ true + 1 }}|{{ 'a' ~ 1 ~ none ~ x }}", {}),
    ("{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }}", {}),
    ("{{ x }}|{{ x | default('d') }}|{{ '' | default('e', true) }}|{{ x is defined }}|{{ x is undefined }}", {}),
    ("{{ none.foo }}|{{ [1, 2][5] }}|{{ {'a': 1}.b }}|{{ 'abc'[1] }}|{{ 'abc'[-1] }}|{{ [1,2,3][-2] }}", {}),
    ("{{ s[1:] }}|{{ s[:-1] }}|{{ s[::-1] }}|{{ s[::2] }}|{{ l[1:3] }}|{{ l[::-1] }}|{{ l[-2:] }}|{{ s[10:] }}",
     {"s": "héllo", "l": [1, 2, 3, 4]}),
    ("{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'Hello World' | lower }}|{{ 'hello world-foo(bar' | title }}"
     "|{{ 'hELLO' | capitalize }}|{{ 'straße' | upper }}|{{ 'ÉCOLE' | lower }}", {}),
    ("{{ 'a,b,,c'.split(',') }}|{{ '  a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}"
     "|{{ 'abc'.endswith(('x', 'c')) }}|{{ '\\nab\\n'.strip('\\n') }}|{{ 'xyx'.lstrip('x') }}|{{ 'xyx'.rstrip('x') }}", {}),
    ("{{ 'a-b-c'.replace('-', '+') }}|{{ 'a-b-c'.replace('-', '+', 1) }}|{{ 'ab' | replace('', '.') }}"
     "|{{ 'hello {} {}'.format(1, 'x') }}|{{ '{name}!'.format(name='n') }}|{{ 'they\\'re bill'.title() }}", {}),
    ("{{ d.items() | list }}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.get('a') }}|{{ d.get('z', 9) }}"
     "|{{ d.get('z') }}|{{ d | items | list }}|{{ 'a' in d }}|{{ 'z' not in d }}", {"d": {"a": 1, "b": [2]}}),
    ("{{ l | length }} {{ l | count }} {{ 'héllo' | length }} {{ d | length }} {{ l | first }} {{ l | last }}"
     " {{ l | join('-') }} {{ l | sort }} {{ l | sort(reverse=true) }} {{ l | unique | list }} {{ l | sum }}"
     " {{ l | min }} {{ l | max }} {{ l | reverse | list }}", {"l": [3, 1, 2, 3], "d": {"a": 1}}),
    ("{{ ['b', 'A', 'a', 'C'] | sort }}|{{ ['b', 'A', 'a'] | unique | list }}|{{ ['b', 'A', 'a'] | sort(case_sensitive=true) }}", {}),
    ("{{ users | selectattr('admin') | map(attribute='name') | join(', ') }}|{{ users | rejectattr('admin') | list | length }}"
     "|{{ users | selectattr('name', 'equalto', 'bo') | list }}|{{ users | sort(attribute='age') | map(attribute='name') | list }}"
     "|{{ users | map(attribute='missing', default='?') | list }}|{{ [1, 2, 3, 4] | select('even') | list }}"
     "|{{ [1, 2, 3] | reject('odd') | list }}|{{ ['a', 'b'] | map('upper') | list }}",
     {"users": [{"name": "al", "admin": True, "age": 30}, {"name": "bo", "admin": False, "age": 20}]}),
    ("{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ x | tojson(sort_keys=true) }}|{{ 'é\\n\\u0001\"' | tojson }}"
     "|{{ [] | tojson(indent=2) }}|{{ {} | tojson }}|{{ 1.0 | tojson }}|{{ none | tojson }}",
     {"x": {"b": [1, 2.5, None, True, "ü"], "a": {"c": "d"}, "e": []}}),
    ("{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }}"
     " {{ 'x' | float }} {{ 3 | float }} {{ 3 | string }} {{ [1] | string }} {{ true | string }}", {}),
    ("{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}"
     "|{{ 'one two  three' | wordcount }}|{{ 'x' | safe }}", {}),
    ("{% for a, b in d.items() %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
     "{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ a }}{{ b }};{% endfor %}", {"d": {"x": 1, "y": 2, "z": 3}}),
    ("{% for i in range(5) if i is odd %}{{ loop.index }}:{{ i }}/{{ loop.length }} {% endfor %}"
     "{% for i in [] %}no{% else %}empty{% endfor %}{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}", {}),
    ("{% for i in l %}{{ loop.previtem }}<{{ i }}>{{ loop.nextitem }}|{% endfor %}"
     "{% for c in 'héj' %}[{{ c }}]{% endfor %}{% for i in l %}{{ loop.cycle('a', 'b') }}{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}"
     "{% endfor %}", {}),
    ("{% set y = 5 %}{% for i in [1, 2] %}{{ y }}{% set y = i %}{{ y }}{% endfor %}{{ y }}"
     "{% if true %}{% set y = 6 %}{% endif %}{{ y }}{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}"
     "{% endfor %}{{ ns.n }}|{{ ns.s }}", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('al') }} {{ greet('bo', '?') }}"
     " {{ greet(name='cy', punct='.') }} {{ greet() }}", {}),
    ("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}"
     "{% endcall %}{% macro li(x) %}[{{ caller(x * 2) }}]{% endmacro %}{% call(v) li(4) %}v={{ v }}{% endcall %}", {}),
    ("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1) | int) }}{% endif %}{% endmacro %}{{ fact(10) }}", {}),
    ("{% filter upper %}shout {{ 'this' }}{% endfilter %}|{% set body %}  block {{ 1 }}  {% endset %}[{{ body }}]"
     "{% set t | trim %}  trimmed  {% endset %}[{{ t }}]", {}),
    ("{{ 1 if x else 2 }}|{{ 1 if true }}|{{ 'a' if false }}|{{ x or 'y' }}|{{ 0 and 1 }}|{{ 1 and 'z' }}"
     "|{{ not x }}|{{ not 1 == 2 }}|{{ 1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3 and 1 != 2 }}", {}),
    ("{{ 1 in [1, 2] }}|{{ 'b' in 'abc' }}|{{ 3 not in [1] }}|{{ 1 == 1.0 }}|{{ [1, [2]] == [1, [2]] }}"
     "|{{ {'a': 1} == {'a': 1} }}|{{ 'a' < 'b' }}|{{ none == none }}|{{ x == none }}", {}),
    ("{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is number }}{{ true is boolean }}{{ 'a' is string }}"
     "{{ {} is mapping }}{{ [] is sequence }}{{ 'a' is iterable }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}"
     "{{ 9 is divisibleby(2) }}{{ none is none }}{{ true is true }}{{ false is false }}{{ 1 is true }}{{ x is not defined }}"
     "{{ 'A' is upper }}{{ 'a' is lower }}{{ 2 is eq 2 }}{{ 1 is in [1] }}", {}),
    ("{{ \"a\\tb\\\\c\\x41\\u00e9\\U0001F600\" }}|{{ 'it''s' }}|{{ 'con' 'cat' }}|{{ 1_000 }}|{{ 1.5e3 }}", {}),
    ("  {% if true %}\n    kept\n  {% endif %}\n{%- if true -%}\n  stripped  \n{%- endif %}\n{# comment #}\n"
     "  {#- c2 -#}  x {{- ' y ' -}} z\n{%+ if true %}plus{% endif +%}\nafter", {}),
    ("a\r\nb\rc\n", {}),
    ("{% for m in messages %}{{ m.role }}={{ m['content'] }};{% endfor %}{{ messages | length }}",
     {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    ("{{ strftime_now('%Y-%m-%d %H:%M %a %b') }}", {}),
    ("{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("{{ dict(a=1, b='x') }}|{{ namespace(a=1).a }}|{{ {'a': 1}['a'] }}|{{ [[1, 2], [3]] | map('length') | list }}", {}),
    ("{{ raise_exception('custom failure: ' ~ 42) }}", {}),
    ("{{ x.y }}", {}),
    ("{{ x.y.z }}", {"x": {}}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ d | tojson }}", {"d": {"big": 12345678901, "neg": -3, "f": -0.5, "e": 1e-7}}),
]


def render_snippet(template, variables):
    return ctu._compile_jinja_template(template).render(**variables)


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
    snippets = []
    for template, variables in SNIPPETS:
        case = {"template": template, "vars": variables}
        try:
            case["expected"] = render_snippet(template, variables)
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
            case["raised"] = type(e) is jinja2.exceptions.TemplateError
        except Exception as e:
            case["error"] = f"{type(e).__name__}: {e}"
            case["raised"] = False
        snippets.append(case)
    out = ROOT / "tests" / "golden" / "template-snippets.json"
    out.write_text(json.dumps(snippets, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{out.relative_to(ROOT)}: {len(snippets)} snippets", file=sys.stderr)


if __name__ == "__main__":
    main()
