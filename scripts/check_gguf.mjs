// Loads a GGUF export in a real llama.cpp (node-llama-cpp's prebuilt binary, CPU) and answers
// prompts greedily with the model's own chat template: the check that llama.cpp, LM Studio and
// Ollama can use what `wgtune export --gguf/--gguf-adapter/--ollama` wrote.
//
// Not a project dependency. Install it anywhere and run from there:
//   mkdir -p /tmp/llama && cd /tmp/llama && npm install node-llama-cpp
//   node /path/to/wgtune/scripts/check_gguf.mjs MODEL.gguf [--lora ADAPTER.gguf] "What is the capital of Zorbia?"
// With --raw the prompts are continued as plain text (no chat template), 12 tokens (--tokens N),
// for comparing token by token with `wgtune generate --no-chat-template --max-new-tokens 12`.
// --context N sizes llama.cpp's context (Phi-3's LongRoPE picks its short factors only within
// the pretrained context).
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const loraAt = args.indexOf("--lora");
const lora = loraAt >= 0 ? args.splice(loraAt, 2)[1] : undefined;
const rawAt = args.indexOf("--raw");
const raw = rawAt >= 0 && args.splice(rawAt, 1).length > 0;
const option = (flag) => {
    const at = args.indexOf(flag);
    return at >= 0 ? Number(args.splice(at, 2)[1]) : undefined;
};
const tokens = option("--tokens") ?? 12;
const contextSize = option("--context");
const [modelPath, ...prompts] = args;
if (!modelPath || prompts.length === 0) {
    console.error("usage: node check_gguf.mjs MODEL.gguf [--lora ADAPTER.gguf] PROMPT...");
    process.exit(2);
}

// Resolved from the working directory, where node-llama-cpp is installed.
const require = createRequire(`${process.cwd()}/`);
const { getLlama, LlamaChatSession, LlamaCompletion } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);

const llama = await getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath });
// One sequence per prompt: each answer starts from an empty history.
const context = await model.createContext({
    sequences: prompts.length,
    ...(contextSize ? { contextSize } : {}),
    ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}),
});
console.log(`loaded ${modelPath}${lora ? ` with adapter ${lora}` : ""}: ${model.fileInfo.metadata.general.architecture}, ${model.trainContextSize} tokens of context`);
for (const prompt of prompts) {
    if (raw) {
        const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
        const text = await completion.generateCompletion(prompt, { temperature: 0, maxTokens: tokens });
        console.log(`${prompt} -> ${JSON.stringify(text)}`);
        completion.dispose();
        continue;
    }
    const session = new LlamaChatSession({ contextSequence: context.getSequence() });
    const answer = await session.prompt(prompt, { temperature: 0, maxTokens: 48 });
    console.log(`${prompt} -> ${answer.trim()}`);
    session.dispose();
}
await context.dispose();
await model.dispose();
