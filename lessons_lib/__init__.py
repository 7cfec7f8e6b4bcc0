"""LoRA Adapter Lab: the support library behind the course notebooks (imports stay light here).

Module map: lesson (notebooks/src/NN_*.py) -> the lessons_lib modules it imports -> the tests (tests/test_*.py) that
cover them.

    every lesson   lesson, profiles, models, adapters, data, evaluate, checks, i18n, quiz
                   -> profiles, artifacts, checks, data, evaluate, quiz, russian_edition
    01 fine-tune   train, recipes, sharegpt, storage, manifest, mixing.dense_weight
                   -> train, train_resume, sharegpt, storage
    02 switch      storage, compat, manifest, batched_lora, budget, widgets.switcher
                   -> storage, compat, multi_adapter, batched_lora, budget, switcher
    03 merge/mix   mixing, budget, widgets.mixer -> mixing, composition, mixer
    04 router      router (data, encode, embedding, learned, metrics, routed), widgets.router_playground, train
                   -> router, router_widgets, domains
    05 tools       tools (functions, schemas, calls, prompts, data, adapter, evaluate, loop, constrained, playground,
                   langchain), chat_format, router, train
                   -> tools_functions, tools_properties, tools_loop, tools_adapter, tools_constrained, chat_format,
                   openai_clients
    06 deploy      serve (process, crosstalk, vllm; the server runs app, engine, loading), router.routed, tools, env,
                   paths -> serve, serve_engine, serve_limits, serve_profiles, vllm_handoff, web_page, openai_clients

Outside the lessons: course and rehearse run them all (course_runner), scaffold builds notebooks/ from
notebooks/src (notebook_structure, scaffold_repository), tiny builds the tiny model (tiny_model, course_adapters).
"""

__version__ = "0.1.0"
