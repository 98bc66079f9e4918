# One image for both Berth processes: `node api/main.ts` (web + API) and `node worker/main.ts`.
# Only named folders are copied (no `COPY . .`): nothing else in the build context — an .env file
# above all — can end up in the image; .dockerignore keeps such files out of the context too.
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json react-router.config.ts vite.config.ts ./
COPY activities activities
COPY api api
COPY db db
COPY lib lib
COPY scripts scripts
COPY web web
COPY worker worker
COPY workflows workflows
# The web app, and the workflow bundle the worker loads (no webpack run at each worker start).
RUN npx react-router build && node worker/bundle.ts build/workflows.js && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends zstd openssh-client && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production BERTH_MODE=production
ENV WORKFLOW_BUNDLE=/app/build/workflows.js
COPY --from=build /app /app
USER node
CMD ["node", "api/main.ts"]
