import { groupTest } from './group-check.js';

groupTest('bcd32');
