/** Workflow interceptor of test/replay/commands.ts: hands every activation's commands to the `commands` sink. */
import { proxySinks, type Sinks, type WorkflowInterceptors } from '@temporalio/workflow';

interface CommandSinks extends Sinks {
  commands: { issued(commands: unknown[]): void };
}
const { commands } = proxySinks<CommandSinks>();

export const interceptors = (): WorkflowInterceptors => ({
  internals: [{
    concludeActivation(input, next) {
      if (input.commands.length > 0) commands.issued(input.commands as unknown[]);
      return next(input);
    },
  }],
});
