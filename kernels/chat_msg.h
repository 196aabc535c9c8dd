/* chat_msg.h — one chat message (role + content), the unit a chat template renders. It lives
 * on the ground floor because two rooms speak it: harness/chat_template.h renders message
 * lists, and tasks/ builds them (through the renderer interface in tasks/task.h) without
 * including harness headers. Both pointers are borrowed. */
#ifndef SCB_KERNELS_CHAT_MSG_H
#define SCB_KERNELS_CHAT_MSG_H

struct scb_chat_msg {
    const char *role;     /* "system", "user", "assistant" (borrowed) */
    const char *content;  /* borrowed, NUL-terminated UTF-8 */
};

#endif
