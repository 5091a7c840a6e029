// gpt-oss-tiny, size m (three redundant name movers): every planted behaviour for three seeds (0, and
// 4242 and 31337 picked arbitrarily, never used to tune the construction). See tiny-suite.ts.
import { describeTinyModel, scratchDir } from './tiny-suite.ts';

const scratch = scratchDir();
for (const seed of [0, 4242, 31337]) describeTinyModel('tiny-m', seed, scratch);
