import { groupTest } from './group-test.js';

groupTest('x87');
